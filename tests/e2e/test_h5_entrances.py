"""The owner's entrances in headless Chromium, and the page checked for accessibility on every screen
walked: 用户协议 and 隐私政策 at login (refused until ticked), help and customer service over any screen,
单位用户业务, a complaint (投诉举报, 第二十一条) that reaches the OEM's listing, and a VIN read from a
photo of the 行驶证 the owner then confirms.

On each screen the page itself measures (JavaScript in the page) the contrast of every visible text
against its effective background, names every control, every image's alt text and the live regions;
Tab walks the screen in reading order with a visible focus. Screenshots of every screen checked are
saved under the test's tmp dir (``screenshots/``).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.test_h5_registration import Phone, unregistered_vin
from tests.e2e.test_h5_registration import phone as phone  # the browser fixture
from tests.synthetic_documents import require_cjk_font, vehicle_licence

#: A phone no other browser test uses (one code a minute per phone).
LOGIN_PHONE = "13300133009"
DESCRIPTION = "有人冒用我的身份证给一辆我没有买过的车登记了车联网卡，请核查并注销。"

#: Runs in the page: every visible text's contrast against the background it is drawn on (the element's
#: and its ancestors' background colours composited over white, the opacities multiplied), placeholders
#: included; 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). Disabled controls are exempt
#: (WCAG 1.4.3). Each failure names the element.
CONTRAST = r"""
const parse = (s) => {
  const m = s.match(/rgba?\(([^)]+)\)/);
  if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(parseFloat);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, under) => {
  const a = top[3] + under[3] * (1 - top[3]);
  return [0, 1, 2].map((i) => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a).concat([a]);
};
const lum = (c) => {
  const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => {
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
};
const background = (el) => {
  const layers = [];
  let opacity = 1;
  for (let e = el; e; e = e.parentElement) {
    const cs = getComputedStyle(e);
    opacity *= parseFloat(cs.opacity);
    const c = parse(cs.backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  let bg = [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  return [bg, opacity];
};
const name = (el) =>
  el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
  (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
const failures = [];
let checked = 0;
const judge = (el, fgText, text, pseudo) => {
  const cs = getComputedStyle(el);
  const [bg, opacity] = background(el);
  const fg = parse(fgText);
  fg[3] *= opacity;
  const shown = over(fg, bg);
  const size = parseFloat(cs.fontSize);
  const large = size >= 24 || (size >= 18.66 && parseInt(cs.fontWeight, 10) >= 700);
  const r = ratio(shown, bg);
  checked += 1;
  if (r < (large ? 3 : 4.5)) {
    failures.push(name(el) + pseudo + " «" + text.slice(0, 24) + "» " + r.toFixed(2) + ":1");
  }
};
for (const el of document.querySelectorAll("body *")) {
  if (!el.getClientRects().length) continue;
  const cs = getComputedStyle(el);
  if (cs.visibility !== "visible") continue;
  if (el.closest("button:disabled, input:disabled, select:disabled, textarea:disabled, option")) continue;
  const folded = el.closest("details:not([open])");
  if (folded && !el.closest("summary")) continue;
  const own = Array.from(el.childNodes)
    .filter((n) => n.nodeType === 3)
    .map((n) => n.textContent.trim())
    .join("");
  if (own) judge(el, cs.color, own, "");
  if ((el.tagName === "INPUT" || el.tagName === "TEXTAREA") && el.type !== "file") {
    if (el.value) judge(el, cs.color, el.value, "");
    else if (el.placeholder) {
      judge(el, getComputedStyle(el, "::placeholder").color, el.placeholder, "::placeholder");
    }
  }
}
return [checked, failures];
"""

#: Runs in the page: every visible control's accessible name (aria-label, aria-labelledby, its label,
#: its text), every visible image's alt text, and the live regions the page announces with.
NAMES = r"""
const shown = (el) => el.getClientRects().length > 0 || (el.type === "file" && el.closest("label") &&
  el.closest("label").getClientRects().length > 0);
const visible = (el) => shown(el) && !(el.closest("details:not([open])") && !el.closest("summary"));
const accessible = (el) => {
  if (el.getAttribute("aria-label")) return el.getAttribute("aria-label").trim();
  const by = el.getAttribute("aria-labelledby");
  if (by) {
    return by.split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent).join(" ").trim();
  }
  if (el.labels && el.labels.length) return Array.from(el.labels).map((l) => l.textContent).join(" ").trim();
  if (["BUTTON", "A", "SUMMARY"].includes(el.tagName)) return el.textContent.trim();
  return (el.getAttribute("title") || "").trim();
};
const unnamed = [];
let controls = 0;
const selector =
  "button, a[href], input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])";
for (const el of document.querySelectorAll(selector)) {
  if (!visible(el)) continue;
  controls += 1;
  if (!accessible(el)) unnamed.push(el.outerHTML.slice(0, 90));
}
const images = Array.from(document.querySelectorAll("img")).filter((i) => i.getClientRects().length);
const noAlt = images
  .filter((i) => !(i.getAttribute("alt") || "").trim() && i.getAttribute("aria-hidden") !== "true")
  .map((i) => i.outerHTML.slice(0, 90));
const alert = (e) => e.getAttribute("role") === "alert";
const live = {
  progress: (document.getElementById("progress-text") || {}).getAttribute
    ? document.getElementById("progress-text").getAttribute("aria-live") : null,
  notice: document.getElementById("notice").getAttribute("role"),
  errors: Array.from(document.querySelectorAll("section .error")).every(alert),
  fieldErrors: Array.from(document.querySelectorAll(".field-error")).every(alert),
};
return [controls, unnamed, noAlt, live];
"""

#: Runs in the page: where the focused control is (document coordinates), what it is, and whether a
#: focus ring shows on it (or on the label a file input sits in).
FOCUSED = r"""
const el = document.activeElement;
if (!el || el === document.body) return null;
const ring = (e) => {
  const cs = getComputedStyle(e);
  return (cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== "none";
};
const shown = el.type === "file" ? el.closest("label") : el;
const r = shown.getBoundingClientRect();
const sticky = !!el.closest(".bar");
return {
  what: el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""),
  top: sticky ? 0 : Math.round(r.top + window.scrollY),
  left: Math.round(r.left),
  height: Math.round(r.height),
  ring: ring(el) || (el.type === "file" && ring(el.closest("label"))) || ring(shown),
};
"""


def audit(me: Phone, screen: str) -> None:
    """The open screen's contrast, names, alt texts and live regions; a screenshot named ``screen``."""
    me.shot(screen)
    checked, failures = me._js(CONTRAST)
    assert checked > 3, f"{screen}: only {checked} texts measured"
    assert failures == [], f"{screen}: text below 4.5:1 (3:1 large): {failures}"
    controls, unnamed, no_alt, live = me._js(NAMES)
    assert controls > 0, screen
    assert unnamed == [], f"{screen}: controls without an accessible name: {unnamed}"
    assert no_alt == [], f"{screen}: images without alt text: {no_alt}"
    assert live == {"progress": "polite", "notice": "status", "errors": True, "fieldErrors": True}, live


def tab_order(me: Phone, screen: str, expect: list[str]) -> list[str]:
    """Tab from the top of the screen: each stop below (or right of) the one before, with a visible
    focus ring; the stops include ``expect`` in that order."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    me._js("window.scrollTo(0, 0); document.activeElement && document.activeElement.blur();")
    me.element("#title").click()  # Tab starts from the top of the screen
    stops: list[dict[str, Any]] = []
    for _ in range(40):
        ActionChains(me.driver).send_keys(Keys.TAB).perform()
        at = me._js(FOCUSED)
        if at is None or (stops and at["what"] == stops[0]["what"]):
            break
        stops.append(at)
        if at["what"] == expect[-1]:
            me.shot(screen + "-focus")  # the focus ring on the last control expected
    names = [s["what"] for s in stops]
    for before, after in itertools.pairwise(stops):
        same_row = abs(after["top"] - before["top"]) < max(before["height"], 8)
        assert after["top"] >= before["top"] or same_row, f"{screen}: focus goes up from {before} to {after}"
        if same_row:
            assert after["left"] >= before["left"] - 2, f"{screen}: focus goes left from {before} to {after}"
    no_ring = [s["what"] for s in stops if not s["ring"]]
    assert no_ring == [], f"{screen}: no visible focus on {no_ring}"
    positions = [names.index(e) for e in expect]
    assert positions == sorted(positions), f"{screen}: focus order {names}, expected {expect} in order"
    return names


def test_the_entrances_walked_on_an_accessible_page_from_login_to_a_complaint_the_oem_sees_and_a_scanned_vin(
    phone: Phone, stack: Stack
) -> None:
    require_cjk_font()
    me = phone
    for method, path in (("GET", "/v1/help"), ("GET", "/v1/account-texts"), ("GET", "/v1/me/complaints")):
        assert stack.route_exists(method, path), f"{method} {path} is not served"
    vin = unregistered_vin(stack)

    # The login screen: the agreement checkbox, with both texts one tap away
    me.open()
    me.wait_screen("login")
    audit(me, "01-login")
    names = tab_order(
        me, "01-login", ["input#login-phone", "input#login-code", "button#login-send", "input#login-agree"]
    )
    assert names.index("input#login-agree") < names.index("button#login-submit")
    me.tap("#login-read-user_agreement")
    me.wait_until("the user agreement", lambda: me.element("#text-viewer").is_displayed())
    me.wait_until("its text", lambda: "用户协议" in me.element("#text-viewer-title").text)
    assert "投诉举报" in me.element("#text-viewer-body").text
    audit(me, "02-user-agreement")
    me.tap("#text-viewer-close")
    me.tap("#login-read-privacy_policy")
    me.wait_until("the privacy policy", lambda: "隐私政策" in me.element("#text-viewer-title").text)
    assert "加密保存" in me.element("#text-viewer-body").text
    me.shot("03-privacy-policy")
    me.tap("#text-viewer-close")

    # Login is refused until the box is ticked, under the box; the server records what was accepted
    me.fill("#login-phone", LOGIN_PHONE)
    code = me.sms_code(LOGIN_PHONE, lambda: me.tap("#login-send"))
    me.fill("#login-code", code)
    me.tap("#login-submit")
    refusal = me.wait_until("the agreement's refusal", me.errors)
    assert refusal == ["请先阅读并勾选同意《用户协议》和《隐私政策》"], refusal
    assert me.element("#login-agree").get_attribute("aria-invalid") == "true"
    assert me.screen() == "login"
    audit(me, "04-login-not-agreed")
    me.tap("#login-agree")
    me.tap("#login-submit")
    me.wait_screen("home")
    for tile in ("#home-enterprise", "#home-complaint", "#home-help"):
        assert me.element(tile).is_displayed(), tile
    audit(me, "05-home")
    tab_order(me, "05-home", ["button#home-register", "button#home-enterprise", "button#home-help"])

    # Help and customer service, over the home screen
    me.tap("#home-help")
    me.wait_until("the help sheet", lambda: me.element("#help").is_displayed())
    me.wait_until("the service phone", lambda: re.search(r"\d{3}", me.element("#help-phone").text))
    assert str(me.element("#help-phone").get_attribute("href")).startswith("tel:")
    me.tap("#faq-head-unit summary")
    assert "中控屏" in me.element("#faq-head-unit").text
    me.tap("#faq-review summary")
    assert "工作日内完成" in me.element("#faq-review").text
    audit(me, "06-help")
    me.tap("#help-close")
    assert me.screen() == "home"

    # 单位用户业务: what to prepare, whom to call, and the link to the enterprise portal this stage serves
    me.tap("#home-enterprise")
    me.wait_screen("enterprise")
    me.wait_until("how to register", lambda: me.element("#enterprise-how").text)
    assert "营业执照" in me.element('section[data-screen="enterprise"]').text
    assert "单位用户业务平台注册单位账号" in me.element("#enterprise-how").text
    assert me.element("#enterprise-portal").is_displayed()
    assert str(me.element("#enterprise-portal").get_attribute("href")).endswith("/portal")
    assert str(me.element("#enterprise-call").get_attribute("href")).startswith("tel:")
    audit(me, "07-enterprise")
    me.tap("#go-home")
    me.wait_screen("home")

    # 投诉举报: refused field by field, then filed with a number; the login phone offered for contact
    me.tap("#home-complaint")
    me.wait_screen("complaint")
    assert me.element("#complaint-phone").get_attribute("value") == LOGIN_PHONE
    me.wait_until("the empty list", lambda: "还没有提交过" in me.element("#complaint-list").text)
    me.fill("#complaint-phone", "138")
    me.tap("#complaint-submit")
    shown = me.wait_until("the field refusals", me.errors)
    assert shown == [
        "请选择投诉类型",
        "请写下您要投诉或举报的情况",
        "请输入正确的 11 位手机号码，方便我们联系您",
    ]
    audit(me, "08-complaint-refused")
    tab_order(
        me,
        "08-complaint",
        [
            "select#complaint-category",
            "textarea#complaint-description",
            "input#complaint-vin",
            "input#complaint-phone",
        ],
    )
    from selenium.webdriver.support.ui import Select

    Select(me.element("#complaint-category")).select_by_visible_text("冒用身份")
    me.fill("#complaint-description", DESCRIPTION)
    assert me.element("#complaint-count").text == f"{len(DESCRIPTION)}/500"
    me.fill("#complaint-vin", vin)
    me.fill("#complaint-phone", LOGIN_PHONE)
    me.tap("#complaint-submit")
    filed = me.wait_until("the complaint number", lambda: me.element("#complaint-filed").is_displayed())
    assert filed
    text = me.element("#complaint-filed").text
    number = re.search(r"TS\d{8}[0-9A-F]{6}", text)
    assert number, text
    assert "133****3009" in text
    assert "15 个工作日" in text
    me.wait_until("the complaint listed", lambda: number.group() in me.element("#complaint-list").text)
    assert "已受理，等待处理" in me.element("#complaint-list").text
    audit(me, "09-complaint-filed")

    # It reaches the OEM: the admin listing shows it (the phone masked for an admin)
    status, listed = stack.call("GET", "/v1/admin/complaints", token=stack.admin_token)
    assert status == 200, listed
    ours = [c for c in listed["complaints"] if c["complaint_id"] == number.group()]
    assert len(ours) == 1, listed
    assert (ours[0]["category"], ours[0]["description"], ours[0]["vin"]) == (
        "identity_misuse",
        DESCRIPTION,
        vin,
    )
    assert ours[0]["contact_phone"] == "133****3009"

    # 拍照识别: the VIN read from a photo of the 行驶证 fills the field; the owner confirms it
    me.tap("#go-home")
    me.wait_screen("home")
    me.tap("#home-register")
    me.wait_screen("vin")
    audit(me, "10-vin")
    licence = me.write("licence.jpg", vehicle_licence(vin=vin, fmt="JPEG"))
    me.choose_files("#vin-scan", licence)
    me.wait_until("the VIN read", lambda: me.element("#vin-read").is_displayed(), timeout=60)
    assert me.element("#vin-input").get_attribute("value") == vin
    assert vin in me.element("#vin-read").text
    assert "核对" in me.element("#vin-read").text
    audit(me, "11-vin-scanned")
    me.tap("#vin-submit")
    me.wait_screen("confirm_vehicle")
    assert vin[-6:] in me.element("#vehicle-card").text

    # 帮助 from inside a step: the sheet opens over the step, which stays where it was
    me.tap("#progress-help")
    me.wait_until("the help sheet", lambda: me.element("#help").is_displayed())
    audit(me, "12-help-in-a-step")
    me.tap("#help-close")
    assert me.screen() == "confirm_vehicle"
    assert me.console_errors() == [], me.console_errors()
