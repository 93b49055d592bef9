"""What a complaint is about, in the customer's own words: product nouns and symptoms.

Two reports that name the same kind of product (``冰箱`` and ``冰箱门``, ``热水壶`` and
``电热水壶``) are about the same thing; one about a fridge and one about a sofa are not.
Each line of :data:`ITEMS` is one item: its name first, then the other words
customers use for it. Longer words are matched first, so ``洗碗机`` is not
read as ``碗``. Traditional characters are folded before matching.
"""

from __future__ import annotations

import re

from triage.text import simplify

ITEMS = """
冰箱 电冰箱 冰柜 冷柜
洗衣机 洗烘套装 烘干机 干衣机 滚筒
洗碗机
空调 外机 内机 挂机 柜机
热水器 燃气热水器 电热水器
热水壶 电热水壶 烧水壶 水壶 电水壶
电饭煲 电饭锅 内胆
电压力锅 高压锅 压力锅
电磁炉 电陶炉
燃气灶 煤气灶 灶具
油烟机 抽油烟机 烟机
微波炉
烤箱 空气炸锅
豆浆机 破壁机 料理机 榨汁机 搅拌机
咖啡机 咖啡 挂耳
净水器 滤芯
饮水机
扫地机器人 扫地机 扫拖机器人 拖地机
吸尘器
加湿器 除湿机
空气净化器 净化器
取暖器 电暖器 暖风机 油汀
电热毯
电风扇 风扇 落地扇
吹风机 电吹风
剃须刀 电动牙刷 牙刷
足浴盆 泡脚桶
按摩椅 按摩仪
电视 电视机
手机
平板
笔记本 电脑
手表 智能手表 手环 watch smartwatch
耳机 蓝牙耳机 earbud earbuds earphone earphones headphone headphones
音箱 音响
充电宝 移动电源
充电器 充电头 数据线
路由器
门锁 智能锁 指纹锁
摄像头 监控
灯 台灯 吸顶灯
沙发
床垫 床
衣柜 柜子
桌子 餐桌 椅子
马桶 智能马桶
花洒 龙头 水龙头
床品 四件套 被子 枕头
羽绒服
外套 大衣
衬衫 T恤
裤子 牛仔裤
裙子 连衣裙
鞋 运动鞋 皮鞋
背包 书包 双肩包 手提包 行李箱
奶粉
牛奶 酸奶
零食 饼干 坚果
月饼
茶叶 茶
面包 蛋糕
"""


#: Symptoms, as with items: the name first, then how customers say it. An item and a
#: symptom together are a fault (``充电宝·鼓胀``), which the batch signal counts.
SYMPTOMS = """
鼓胀 鼓包 胀包 胀袋 胀气 鼓起来 鼓起 鼓了
漏水 渗水 滴水 漏了 leak leaks leaking
漏电 电到 麻手
过热 发烫 很烫 烫手 发热严重 烫得 overheat overheats overheating
冒烟
起火 着火 烧着 自燃
焦糊 烧黑 焦黑 烧糊 糊味 焦味
不断电 不跳闸 不跳 干烧
跳闸
停机 自动关机 自己关机 停了 关机
无法开机 开不了机 开不机 不开机 开不了 打不开机
黑屏 不显示 花屏 闪屏 屏幕闪 一直闪 flicker flickers flickering
无声 没声 没声音 哑了 不出声 silent mute
异响 噪音 响声 嗡嗡
不制冷 不冷 制冷差
不加热 不热 加热慢
充不进电 充不上电 不充电 充不了电
自动开锁 自己开了 自己开门 自己打开 自动打开 自己开
开胶 脱胶 张嘴
破裂 裂开 开裂 裂了 碎了
掉漆 掉色 褪色 起球 脱线
异味 酸臭 酒味 臭味 怪味 发酸 变质
发霉 长毛 霉点
异物 头发 虫子 玻璃渣
腹痛 肚子疼 拉肚子 腹泻 呕吐 过敏
"""


def _table(source: str) -> tuple[dict[str, str], re.Pattern[str]]:
    names: dict[str, str] = {}
    for line in source.strip().splitlines():
        words = line.split()
        for word in words:
            names.setdefault(simplify(word), words[0])
    ordered = sorted(names, key=lambda word: (-len(word), word))
    return names, re.compile("|".join(map(re.escape, ordered)))


_NAMES, _PATTERN = _table(ITEMS)
_SYMPTOMS, _SYMPTOM_PATTERN = _table(SYMPTOMS)


def items_in(text: str, *, simplified: bool = False) -> frozenset[str]:
    """The items ``text`` names (by their first name in :data:`ITEMS`)."""
    text = text if simplified else simplify(text)
    return frozenset(_NAMES[match.group()] for match in _PATTERN.finditer(text))


def symptoms_in(text: str, *, simplified: bool = False) -> frozenset[str]:
    """The symptoms ``text`` names (by their first name in :data:`SYMPTOMS`)."""
    text = text if simplified else simplify(text)
    return frozenset(_SYMPTOMS[match.group()] for match in _SYMPTOM_PATTERN.finditer(text))


def faults_in(text: str, *, simplified: bool = False) -> frozenset[str]:
    """Every item named with every symptom named: ``充电宝·鼓胀``."""
    text = text if simplified else simplify(text)
    items = items_in(text, simplified=True)
    if not items:
        return frozenset()
    return frozenset(f"{i}·{s}" for i in items for s in symptoms_in(text, simplified=True))
