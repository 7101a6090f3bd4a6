"""Invented identities for demos (``cheka demo-id-card``): a random name and a random valid resident ID
number (a real county code, a birth date, a sequence whose parity gives the sex, the GB 11643 check
character), different each call. None of them is a real person's; the sandbox identity authority
knows one only once it is registered there."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from stdnum.cn import ric

from chalicelib.kernel.validators import validate

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国晓宇浩然子轩欣怡梓涵一诺思远嘉豪雨萱"
#: County code → the start of its addresses.
COUNTIES = {
    "110101": "北京市东城区",
    "110105": "北京市朝阳区",
    "310101": "上海市黄浦区",
    "440103": "广东省广州市荔湾区",
    "440305": "广东省深圳市南山区",
    "330106": "浙江省杭州市西湖区",
    "510104": "四川省成都市锦江区",
    "420102": "湖北省武汉市江岸区",
    "320102": "江苏省南京市玄武区",
    "370102": "山东省济南市历下区",
}
STREETS = ("建设路", "人民路", "解放大街", "中山路", "文化街", "和平里", "新华路", "长安街")


@dataclass(frozen=True)
class InventedIdentity:
    name: str
    id_number: str
    sex: str
    birth_date: date
    address: str


def invent_identity(rng: random.Random | None = None) -> InventedIdentity:
    """A new invented identity (``rng`` makes it repeatable)."""
    rng = rng or random.SystemRandom()
    county = rng.choice(sorted(COUNTIES))
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 44))
    sequence = rng.randrange(1, 1000)
    body = f"{county}{born:%Y%m%d}{sequence:03d}"
    number = validate("resident_id", body + ric.calc_check_digit(body + "0")).value
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(2))
    address = (
        f"{COUNTIES[county]}{rng.choice(STREETS)}{rng.randrange(1, 300)}号"
        f"{rng.randrange(1, 20)}号楼{rng.randrange(1, 30)}0{rng.randrange(1, 5)}室"
    )
    return InventedIdentity(
        name=name,
        id_number=number,
        sex="男" if sequence % 2 else "女",
        birth_date=born,
        address=address,
    )
