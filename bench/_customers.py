"""WeChat messages as customers write them: many people, some writing more than once, own words.

The load for a stage that looks across messages (same-incident linking)
must not be one text from a few thousand OpenIDs in rotation, nor quote the
message id as an order number. Here :func:`message` gives message ``n``'s
sender and text:

* **Customers**: message ``n`` belongs to block ``n // BLOCK``; each block
  has ``BLOCK / MESSAGES_PER_CUSTOMER`` customers of its own, and a hash of
  ``n`` picks one of them. So there is one customer per four messages on
  average, some write once, some six or seven times, their messages spread
  over a block (from under a second of load to a few seconds, with linking
  on) rather than back to back.
* **Texts**: :data:`TEXTS`, three dozen complaints about household
  appliances as customers type them into WeChat; a hash of ``n`` picks one.
  Some quote the customer's order number (13 digits, ``订单号 3920118822017``),
  some a phone number or its last four digits, some nothing at all (a
  follow-up such as "再催一下"). Every customer has an order number and a
  phone number of their own, distinct from everyone else's; one customer in
  five has a second order, quoted in about half of their messages that
  quote one (two orders are two incidents: the linker must not join them).

Pure and deterministic: the same ``n`` gives the same message in every
process, so gateways compared with each other get the same load.
"""

from __future__ import annotations

import hashlib

#: Messages a block spans, and how many messages a customer writes on average.
BLOCK = 1024
MESSAGES_PER_CUSTOMER = 4
_CUSTOMERS_PER_BLOCK = BLOCK // MESSAGES_PER_CUSTOMER
#: Odd and not a multiple of 5: multiplying by it permutes 11-digit numbers.
_SCATTER = 2_654_435_761
_SECOND_ORDER = 50_000_000_000

TEXTS = (
    "你好，我上周买的滚筒洗衣机脱水的时候整台机器都在跳，声音特别大，订单号 {order}，"
    "麻烦尽快安排师傅上门看看。",
    "冰箱用了不到一个月冷藏室就不制冷了，里面的菜全坏了，订单号{order}，要求换新。",
    "空调装好第二天外机就开始漏水，滴得楼下邻居都来找我了，你们安装师傅到底有没有装好？",
    "热水器洗着洗着就变凉水，一晚上反复好几次，已经报修三天了没人联系我。",
    "微波炉加热的时候有火花，还有一股焦味，吓得我赶紧拔了插头，这是不是有安全问题？订单 {order}",
    "油烟机吸力很小，炒个菜满屋子都是烟，跟宣传的根本不一样，我要退货。",
    "洗碗机洗完的碗上面还有油渍和残渣，试了好几种模式都一样，订单号：{order}",
    "电视买回来屏幕左下角就有一条竖线，开箱验机的时候没注意，现在客服说过了七天不给换，太不合理了。",
    "扫地机器人充不上电，底座灯一直闪，售后说要寄回去检测，来回运费谁出？",
    "电饭煲内胆涂层一个月就掉了，煮出来的饭里都有黑点，这还能吃吗？订单号 {order}，要求退款。",
    "师傅上门装空调收了我三百块辅材费，说是必须的，发票也不给开，这个费用合理吗？手机尾号{tail}",
    "冰箱送货的时候门上磕了一个坑，送货师傅让我找客服，订单 {order}，请给个处理方案。",
    "我家的燃气热水器点不着火，报修电话一直占线，能不能让人给我回个电话，{phone}",
    "洗衣机进水阀漏水，把木地板泡坏了，这个损失谁来赔？订单号{order}",
    "空调遥控器按了没反应，换了电池也不行，机器本身是好的，能不能补寄一个遥控器？",
    "说好的以旧换新补贴五百元，到现在都没到账，订单号 {order}，客服每次都说在处理。",
    "买的时候说包安装，结果师傅来了又说要另外收费，态度还特别差，我要投诉这个师傅。",
    "净水器装上以后出水有股塑料味，换了滤芯还是有，家里有小孩不敢喝，尾号{tail}的手机可以联系我。",
    "烤箱温度根本不准，设置两百度实际感觉只有一百多，烤什么都不熟。",
    "吸尘器用了两次电机就烧了，有焦糊味，订单号 {order}，申请换货。",
    "物流显示冰箱已经签收了，可是我根本没收到，也没人给我打电话，订单号{order}",
    "空调制热效果很差，开到三十度屋里还是冷的，维修师傅来看了说正常，我不接受。",
    "电热水壶底部生锈了，才用了半个月，这质量太差了吧，要求退货。",
    "洗衣机显示E4故障代码，说明书上的方法都试过了还是不行，麻烦派人来修，联系电话{phone}",
    "预约了周六上午安装，我请了假在家等了一整天都没人来，也没人通知改时间，太耽误事了！",
    "冰箱晚上压缩机嗡嗡响，吵得睡不着觉，这个噪音正常吗？订单 {order}",
    "油烟机安装时把我家墙上的瓷砖打裂了两块，师傅说不关他的事，你们公司怎么处理？",
    "上次反映的问题到现在还没解决，已经第三次联系了，能不能给个准话？",
    "再催一下，师傅说今天来，现在还没到，电话也打不通。",
    "补充一下，机器的型号在包装盒侧面，照片我等会儿发给你们。",
    "发票抬头开错了，要求重新开具，订单号 {order}，我的手机尾号是{tail}。",
    "电视开机几分钟就自动关机，反复重启，售后说要等配件，已经等了两周了。",
    "买的是一级能效的空调，收到的是三级能效的，跟页面描述不符，订单号{order}，要求退差价或者换货。",
    "你们到底有没有人管？打了四次电话了，每次都说会有人联系，一次都没有。",
    "洗碗机门关不严，一运行就漏水，厨房地上全是水。",
    "热水器漏电，洗澡的时候手碰到水管有麻麻的感觉，太危险了，请马上派人处理！{phone}",
)


def customer(n: int) -> int:
    """The customer who writes message ``n`` (module docstring)."""
    return (n // BLOCK) * _CUSTOMERS_PER_BLOCK + _hash(n) % _CUSTOMERS_PER_BLOCK


def openid(customer: int) -> str:
    """The customer's OpenID (28 characters, as WeChat's are, for this benchmark's customers)."""
    return f"oCmp{customer:016d}Vb3kT8zQ"


def phone(customer: int) -> str:
    """The customer's mobile number, distinct for customers of one run."""
    return f"1{(36, 39, 58, 86)[customer % 4]}{customer % 10**8:08d}"


def order(customer: int, second: bool = False) -> str:
    """The customer's (first or second) order number: 13 digits, ``39`` and 11 scattered ones."""
    number = (customer + (_SECOND_ORDER if second else 0)) * _SCATTER % 10**11
    return f"39{number:011d}"


def message(n: int) -> tuple[str, str]:
    """The OpenID and the text of WeChat message ``n``."""
    who, h = customer(n), _hash(n)
    second = who % 5 == 0 and (h >> 40) & 1 == 1
    text = TEXTS[(h >> 20) % len(TEXTS)].format(
        order=order(who, second), phone=phone(who), tail=phone(who)[-4:]
    )
    return openid(who), text


def _hash(n: int) -> int:
    return int.from_bytes(hashlib.blake2b(n.to_bytes(16, "big"), digest_size=8).digest(), "big")
