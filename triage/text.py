"""The matching form of a complaint: the customer's words folded so rules see one spelling.

Rules are written once, in simplified Chinese and lower-case ASCII, and must
still match what customers, clerks and speech recognisers produce. The
matching form is for matching only; reasons quote it, the record keeps the
customer's words verbatim. Folding, in order:

1. NFKC (full-width letters, digits and punctuation become ASCII), every decimal
   digit made ASCII (a rule's digit class sees only 0-9), and lower case;
2. traditional to simplified, for the characters of complaint vocabulary in
   :data:`TRADITIONAL` (a few hundred; a character outside the table stays);
3. a thousands separator between digits goes (``4,599`` is ``4599``);
4. sentence ends (。！？；, a line break, a lone ``.``) become ``。``, clause
   separators (，、) become ``,``: negation stays inside its clause, guards
   inside their sentence;
5. everything else that is not a letter or a digit goes: spaces, quotes,
   brackets, emoji, symbols (``¥`` and ``%`` stay), so ``退 款``, ``【退款】``
   and ``退款🙏`` all read ``退款``; a space between two ASCII words or numbers
   stays as one space, so ``x2 3000`` does not become ``x23000``;
6. :class:`Homophones`: speech-recognition slips (``腿款`` for ``退款``).

:func:`read_spoken_digits` turns digits read out one by one (``幺三八杠``) into
ASCII digits, for amounts and order numbers; it is not part of the matching
form, where ``一直`` must stay ``一直``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

#: Traditional characters of complaint vocabulary and their simplified forms, as pairs.
#: Only characters that are not themselves in ordinary simplified use (so no 著, 乾, 藉).
_PAIRS = """
質质 維维 換换 貨货 發发 髮发 電电 機机 壞坏 賠赔 償偿 價价 訂订 單单 錢钱 員员
處处 應应 問问 題题 熱热 燒烧 煙烟 觸触 顧顾 務务 態态 麼么 這这 個个 們们 為为
沒没 還还 給给 說说 話话 讓让 過过 來来 時时 間间 後后 樣样 會会 從从 對对 於于
與与 並并 無无 點点 開开 關关 門门 見见 現现 買买 賣卖 費费 額额 帳账 賬账 號号
碼码 遞递 運运 輸输 達达 貼贴 優优 滿满 減减 紅红 禮礼 贈赠 積积 獎奖 動动 專专
業业 認认 證证 資资 訊讯 確确 實实 際际 產产 體体 驗验 誤误 錯错 壓压 損损 斷断
鬆松 銹锈 鏽锈 氣气 燈灯 響响 聲声 雜杂 畫画 顯显 螢萤 閃闪 險险 傷伤 燙烫 膚肤
醫医 療疗 藥药 飯饭 蟲虫 頭头 黴霉 變变 飲饮 喫吃 兒儿 嬰婴 寶宝 媽妈 爺爷 師师
裝装 導导 購购 銷销 經经 營营 長长 廳厅 場场 區区 戶户 線线 網网 絡络 車车 輛辆
軟软 統统 級级 權权 條条 規规 則则 約约 協协 監监 記记 訴诉 聞闻 報报 紙纸 臺台
視视 頻频 轉转 廣广 傳传 標标 準准 詳详 頁页 圖图 顏颜 綠绿 藍蓝 黃黄 舊旧 偽伪
殘残 罰罚 罵骂 兇凶 嚇吓 煩烦 輕轻 譏讥 諷讽 擺摆 掛挂 聽听 講讲 談谈 請请 謝谢
該该 許许 諾诺 據据 辦办 結结 決决 絕绝 繼继 續续 連连 週周 歲岁 幾几 萬万 億亿
兩两 塊块 圓圆 廠厂 庫库 儲储 櫃柜 檯台 鐘钟 錶表 鑰钥 鎖锁 鍋锅 爐炉 調调 溫温
濕湿 淨净 濾滤 寬宽 邊边 側侧 鍵键 盤盘 纜缆 擠挤 驛驿 簽签 攬揽 遲迟 趕赶 丟丢
護护 責责 補补 歸归 幣币 銀银 餘余 閱阅 屬属 兌兑 獲获 漲涨 貴贵 殺杀 籤签 帶带
滯滞 狀状 總总 計计 數数 憑凭 稅税 郵邮 寫写 讀读 語语 論论 評评 復复 複复 簡简
瑣琐 諉诿 撥拨 擱搁 負负 職职 領领 衛卫 檢检 測测 試试 嚴严 壽寿 穩稳 靈灵 頓顿
當当 啟启 異异 嗆呛 髒脏 汙污 漬渍 劃划 縫缝 脫脱 彎弯 針针 腳脚 縮缩 災灾 隱隐
嚥咽 夾夹 腫肿 癢痒 瀉泻 嘔呕 診诊 喪丧 飛飞 緊紧 馬马 儘尽 盡尽 惡恶 勁劲 騙骗
詐诈 釋释 詢询 進进 裡里 裏里 誰谁 議议 強强 訓训 設设 難难 擔担 書书 衝冲 艦舰
東东 貓猫 訟讼 鬧闹 搶抢 錄录 鏈链 種种 類类 較较 嗎吗 讚赞 歡欢 虧亏 賺赚 貸贷
債债 謊谎 頂顶 層层 樓楼 幫帮 蓋盖 極极 亂乱 礙碍 擾扰 騷骚 鮮鲜 麵面 雞鸡 魚鱼
蝦虾 餅饼 湯汤 醬酱 鹽盐 糧粮 纖纤 襪袜 褲裤 鏡镜 潔洁 廁厕 風风 燭烛 鋼钢 鐵铁
鋁铝 銅铜 膠胶 綿绵 絲丝 織织 亞亚 張张 陳陈 劉刘 楊杨 趙赵 吳吴 鄭郑 孫孙 紀纪
濃浓 厲厉 辭辞 離离 雖虽 歷历 曆历 僅仅 劑剂 隨随 陽阳 陰阴 陸陆 顆颗 願愿 飄飘
驚惊 鬥斗 鳥鸟 齊齐 齒齿 齡龄 龍龙 竊窃 艱艰 藝艺 蘋苹 葉叶 薦荐 術术 製制 襯衬
親亲 覺觉 覽览 觀观 討讨 託托 訪访 詞词 誌志 課课 諒谅 謂谓 識识 譯译 豐丰 財财
貧贫 貿贸 賓宾 賴赖 贊赞 跡迹 踐践 軍军 軌轨 載载 輪轮 農农 違违 遠远 適适 遷迁
選选 遺遗 鄰邻 鈔钞 鈕钮 鋪铺 鑑鉴 閉闭 閒闲 闆板 闊阔 隊队 階阶 雙双 雲云 靜静
項项 順顺 須须 館馆 駕驾 麥麦 隻只 纔才 範范 佔占 捲卷 醜丑 鬍胡 衆众 眾众 偵侦
倉仓 儀仪 傑杰 內内 冊册 凍冻 劍剑 勞劳 勢势 匯汇 厭厌 參参 叢丛 嘗尝 噴喷 圍围
團团 壺壶 夥伙 奪夺 奮奋 妝妆 寢寝 尋寻 屆届 嶄崭 廢废 彈弹 徑径 徵征 憶忆 懷怀
戰战 拋抛 揀拣 搖摇 擁拥 擇择 擊击 擴扩 攜携 敗败 敵敌 斬斩 暈晕 曬晒 樂乐 樞枢
橋桥 檔档 櫥橱 歐欧 殼壳 毀毁 沖冲 洩泄 溝沟 滅灭 滬沪 漁渔 潛潜 澀涩 灑洒 爛烂
犧牺 獨独 環环 瓊琼 畢毕 疊叠 瘋疯 盜盗 盞盏 睏困 矯矫 礎础 禍祸 稱称 穀谷 窮穷
築筑 簾帘 糾纠 紋纹 組组 細细 終终 絞绞 綁绑 緒绪 緣缘 練练 縣县 繩绳 罷罢 聯联
聰聪 肅肃 脅胁 膽胆 臉脸 興兴 舉举 艙舱 蓮莲 蘭兰 蝕蚀 襲袭 覓觅 詠咏 誇夸 諮咨
謠谣 貝贝 貞贞 販贩 貫贯 賀贺 賊贼 賦赋 賞赏 賤贱 贏赢 趨趋 蹤踪 軸轴 輔辅 輯辑
轟轰 辯辩 邁迈 邏逻 鄉乡 醞酝 釀酿 鈴铃 鉗钳 銳锐 鋒锋 錘锤 錦锦 鍍镀 鎮镇 鏟铲
鑽钻 閘闸 閥阀 陣阵 靂雳 頒颁 頸颈 頰颊 顛颠 颱台 飼饲 餃饺 餵喂 騎骑 驅驱 驕骄
骯肮 鬱郁 魯鲁 鴨鸭 鵝鹅 黨党 齣出
編编 養养 廚厨 槍枪 筆笔 腦脑 擋挡 棄弃 憤愤 紛纷 剛刚 漿浆 濺溅 飽饱 餓饿 餿馊
膩腻 噁恶 腸肠 臟脏 滲渗 掃扫 摺折 預预 賽赛 攝摄 晝昼 夢梦 撐撑 脹胀 瘡疮 潰溃
瘍疡 灣湾 蘇苏 漢汉 韓韩 國国 閩闽 寵宠 礦矿 壯壮 麗丽 虛虚 純纯 羅罗 滌涤 綸纶
禦御 鑒鉴 闖闯 嘮唠 囉啰 磚砖 牆墙 釘钉 擰拧 搗捣 臥卧 樸朴 麩麸 醃腌 燉炖 煉炼
鹵卤 滷卤 豬猪 蠔蚝 鮑鲍 餛馄 飩饨 饅馒 糰团 餡馅
"""

TRADITIONAL: Mapping[str, str] = {pair[0]: pair[1] for pair in _PAIRS.split()}

#: Blocks where compatibility characters live (full-width forms, circled digits, ligatures,
#: CJK compatibility ideographs). CJK unified ideographs and Hangul syllables have none.
_COMPATIBILITY_BLOCKS = ((0x00A0, 0x4E00), (0xA000, 0xAC00), (0xD7B0, 0xD800), (0xF900, 0x10000))


def _fold_tables() -> tuple[list[int], re.Pattern[str]]:
    """NFKC then traditional to simplified, as a one-to-one table and the rest.

    The table (one code point per BMP character, a list: faster to index than
    an array, for about 2 MB) feeds ``str.translate``, the only way to touch
    every character of a Chinese text at C speed: NFKC of the whole text costs
    more than every other step of the matching form together.
    Characters NFKC turns into several (``…``, ``℃``, ``㎡``) are few and rare;
    they get a pattern of their own.
    """
    table = list(range(0x10000))
    expanding: list[str] = []
    for low, high in _COMPATIBILITY_BLOCKS:
        for point in range(low, high):
            char = chr(point)
            digit = unicodedata.decimal(char, None)
            if digit is not None:
                table[point] = ord(str(digit))
                continue
            if not unicodedata.decomposition(char):
                continue
            folded = unicodedata.normalize("NFKC", char)
            if len(folded) == 1:
                table[point] = ord(TRADITIONAL.get(folded, folded))
            elif folded != char:
                expanding.append(re.escape(char))
    for traditional, simplified in TRADITIONAL.items():
        table[ord(traditional)] = ord(simplified)
    for point, target in enumerate(table):
        table[point] = ord(_BOUNDARIES.get(chr(target), chr(target)))
    return table, re.compile("[" + "".join(expanding) + "]")


#: Sentence ends and clause separators, after NFKC (a dot may be a decimal point: not here).
_BOUNDARIES = {**dict.fromkeys("。!?;\n\r\u2028\u2029", "。"), **dict.fromkeys(",、", ",")}
_ONE_TO_ONE, _EXPANDING = _fold_tables()

_THOUSANDS = re.compile(r",(?<=\d,)(?=\d{3}(?!\d))")
_DOT = re.compile(r"\.+")
#: Kept for matching: letters and digits, blanks, the two boundaries, the decimal dot, ¥ and %.
_NOISE = re.compile(r"[^\w\s。,.¥%]+")
_BLANK = re.compile(r"\s+")
_BOUNDARY_RUN = re.compile(r"[,。]{2,}")

#: Digits as read out one by one (幺 and 洞 are how 1 and 0 are spoken in numbers).
_SPOKEN_DIGIT = {
    "零": "0",
    "〇": "0",
    "洞": "0",
    "幺": "1",
    "一": "1",
    "二": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
    "杠": "-",
}
_SPOKEN_RUN = re.compile(r"[零〇洞幺一二三四五六七八九杠]{4,}")


def simplify(text: str) -> str:
    """NFKC, lower case and traditional to simplified; punctuation and spacing unchanged.

    NFKC is applied character by character (compatibility folding, which is
    what matters here); combining sequences are not recomposed, and characters
    outside the Basic Multilingual Plane (emoji) are left as they are.
    """
    folded = _EXPANDING.sub(_nfkc, text.translate(_ONE_TO_ONE))
    return folded.lower()


def _nfkc(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group()).translate(_ONE_TO_ONE)


class Homophones:
    """Speech-recognition slips fixed in the matching form: ``腿款`` reads ``退款``.

    Longer slips are tried first, so a table may hold both ``开步了机`` and ``开步``.
    """

    def __init__(self, fixes: Mapping[str, str]) -> None:
        self._fixes = dict(fixes)
        ordered = sorted(self._fixes, key=lambda slip: (-len(slip), slip))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def fix(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._fixes[m.group()], text)


NO_HOMOPHONES = Homophones({})


def matching_form(text: str, homophones: Homophones = NO_HOMOPHONES) -> str:
    """The text the rules match against; see the module docstring for the steps."""
    return fold(simplify(text), homophones)


def fold(simplified: str, homophones: Homophones = NO_HOMOPHONES) -> str:
    """Steps 3 to 6 of the matching form, on a text :func:`simplify` returned."""
    folded = _THOUSANDS.sub("", simplified)
    if "." in folded:
        folded = _DOT.sub(_dot, folded)
    folded = _NOISE.sub("", folded)
    if not folded.isprintable() or " " in folded:
        folded = _BLANK.sub(_blank, folded)
    folded = _BOUNDARY_RUN.sub(_one_boundary, folded)
    return homophones.fix(folded)


def _dot(match: re.Match[str]) -> str:
    """A dot between digits is a decimal point; any other dot ends a sentence."""
    text, start, end = match.string, match.start(), match.end()
    decimal = end - start == 1 and 0 < start and end < len(text)
    return "." if decimal and text[start - 1].isdigit() and text[end].isdigit() else "。"


def _is_word(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _blank(match: re.Match[str]) -> str:
    """One space between two ASCII words or numbers, none elsewhere."""
    text, start, end = match.string, match.start(), match.end()
    between_words = start > 0 and end < len(text) and _is_word(text[start - 1])
    return " " if between_words and _is_word(text[end]) else ""


def _one_boundary(match: re.Match[str]) -> str:
    return "。" if "。" in match.group() else ","


def read_spoken_digits(text: str) -> str:
    """Runs of four or more digits read one by one become ASCII: ``幺三八杠二`` → ``138-2``.

    Only runs of at least four, so ``一一`` and ``三四个`` stay words; numerals
    with units (``两千五百``) are not digit readings and stay as they are.
    """
    return _SPOKEN_RUN.sub(lambda m: "".join(_SPOKEN_DIGIT[c] for c in m.group()), text)
