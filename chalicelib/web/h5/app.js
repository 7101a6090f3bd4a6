/* H5 mobile client of the real-name registration platform (车联网卡实名登记).
 *
 * One page, one screen at a time. The server decides the order: every registration answer carries
 * the next `step`, and the client shows that step's screen, so a reload (or another device) resumes
 * where the person left off. Nothing here decides a check: thresholds, attempts and order are the
 * server's; the client shows the server's Chinese message for every refusal.
 */
"use strict";

(function () {
  // ---------------------------------------------------------------------------------------------
  // Where the API is: the page is served at <root>/h5, the API at <root>/v1/...
  const ROOT = location.pathname.replace(/\/+$/, "").replace(/\/h5$/, "");
  const STORE = {
    token: "cheka.h5.token",
    subject: "cheka.h5.subject",
    phone: "cheka.h5.phone",
    current: "cheka.h5.current",
  };
  const KINDS = {
    registration: {
      path: "/v1/me/registrations",
      smsPurpose: "owner_phone",
      name: "实名登记",
      steps: [
        ["confirm_vehicle", "确认车辆"],
        ["verify_phone", "手机验证"],
        ["possession", "车辆持有"],
        ["identity", "证件信息"],
        ["documents", "证件照片"],
        ["face", "人脸检测"],
        ["consents", "同意协议"],
        ["submit", "提交"],
      ],
    },
    deregistration: {
      path: "/v1/me/deregistrations",
      smsPurpose: "deregistration",
      name: "实名注销",
      steps: [
        ["verify_phone", "手机验证"],
        ["identity", "证件信息"],
        ["documents", "证件照片"],
        ["face", "人脸检测"],
        ["submit", "提交"],
      ],
    },
  };
  const OPERATORS = {
    china_mobile: "中国移动",
    china_unicom: "中国联通",
    china_telecom: "中国电信",
    china_broadnet: "中国广电",
  };
  const CARD_STATES = {
    unregistered: "未登记（仅紧急呼叫）",
    pending: "办理中",
    registered: "已登记",
    deregistered: "已注销",
    transferred: "已过户",
  };
  const FUNCTIONS = { emergency: "紧急呼叫", telematics: "车辆联网服务", data: "车载上网" };
  // The server's directions are in the coordinates of the frames as uploaded ("left": the face turns
  // toward the image's left). The client uploads the camera's frames unmirrored (the kept live photo
  // is then true to life), so a person asked for "left" turns to their own right; the preview is a
  // mirror, where that turn moves toward the screen's right, as the arrow shows.
  const DIRECTIONS = {
    left: ["请向右转头", "→"],
    right: ["请向左转头", "←"],
    up: ["请抬头", "↑"],
    down: ["请低头", "↓"],
  };
  const FACE_REASONS = {
    "liveness.no_face": "未检测到人脸，请正对镜头，保持光线充足",
    "liveness.several_faces": "画面中有多张人脸，请确保只有本人入镜",
    "liveness.not_same_person": "检测过程中人员发生了变化",
    "liveness.identical_frames": "画面没有变化，请按提示转动头部",
    "liveness.no_pose_change": "未检测到头部转动，请按提示缓慢转头",
    "liveness.wrong_direction": "转头方向与提示不一致",
    "liveness.not_continuous": "画面不连贯，请在同一位置一次完成拍摄，不要切换画面",
    "liveness.nonce": "检测会话不匹配，请重新开始检测",
    "liveness.timestamps": "拍摄时间不连贯，请按提示一次完成拍摄",
    "liveness.low_confidence": "活体检测未通过，请在光线充足处重试",
    "liveness.failed": "活体检测未通过",
    "face.no_match": "人脸与身份证照片不一致",
  };
  const SMS_WAIT = 60; // seconds between two codes to one phone (SPEC §3)
  const POLL_MS = 2000;
  const DOC_TYPES = ["image/jpeg", "image/png", "image/bmp"];
  const MAX_FRAME_BYTES = 1024 * 1024;

  const state = {
    kind: "registration",
    reg: null, // the current registration or de-registration (the server's view)
    session: null, // the current liveness session
    docsDone: {}, // kind → true once its photo is stored and read
    consents: null,
    pollTimer: 0,
    pollStarted: 0,
    deregHint: "",
  };

  // ---------------------------------------------------------------------------------------------
  // Small DOM helpers (text always goes in as text, never as markup)
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function rows(pairs) {
    return h(
      "dl",
      { class: "rows" },
      pairs.filter((p) => p[1]).map(([label, value]) => h("div", {}, h("dt", { text: label }), h("dd", {}, value))),
    );
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------------------------------------
  // The API: JSON in, JSON out; refusals are {code, message_zh, message_en, field?, details?}
  class ApiError extends Error {
    constructor(status, body) {
      super(body.message_en || body.code || String(status));
      this.status = status;
      this.code = body.code || "http." + status;
      this.messageZh = body.message_zh || "服务暂时不可用（" + status + "），请稍后重试";
      this.field = body.field || null;
      this.details = body.details || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(STORE.token);
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(ROOT + path, init);
    } catch (_) {
      throw new ApiError(0, { code: "network", message_zh: "网络连接失败，请检查网络后重试" });
    }
    const text = await response.text();
    let doc = null;
    if (text) {
      try {
        doc = JSON.parse(text);
      } catch (_) {
        doc = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, doc && doc.code ? doc : {});
      if (response.status === 401 && token) {
        signOut(error.messageZh || "登录已过期，请重新登录");
      }
      throw error;
    }
    return doc;
  }

  function asError(error) {
    if (error instanceof ApiError) return error;
    console.error(error);
    return new ApiError(0, { code: "client", message_zh: "操作未完成，请重试" });
  }

  // ---------------------------------------------------------------------------------------------
  // Screens, errors, busy buttons
  function currentScreen() {
    return document.body.dataset.screen;
  }

  function section(name) {
    return $('section[data-screen="' + name + '"]');
  }

  function show(name, title) {
    stopPolling();
    stopCamera();
    for (const s of $$("section[data-screen]")) s.hidden = s.dataset.screen !== name;
    document.body.dataset.screen = name;
    $("#title").textContent = title || "车联网卡实名登记";
    clearErrors(section(name));
    const signedIn = Boolean(sessionStorage.getItem(STORE.token));
    $("#go-home").hidden = !signedIn || name === "home" || name === "login";
    $("#sign-out").hidden = !signedIn;
    showProgress(name);
    window.scrollTo(0, 0);
  }

  /** The steps of the current kind; a delegated registration has the delegation step after the phone. */
  function kindSteps() {
    const steps = KINDS[state.kind].steps;
    if (!(state.reg && state.reg.delegated)) return steps;
    const at = steps.findIndex((s) => s[0] === "possession") + 1;
    return steps.slice(0, at).concat([["delegation", "委托信息"]], steps.slice(at));
  }

  function showProgress(name) {
    const steps = kindSteps();
    const inFlow = state.reg && ["review"].concat(steps.map((s) => s[0])).includes(name);
    $("#progress").hidden = !inFlow;
    if (!inFlow) return;
    const at = name === "review" ? steps.findIndex((s) => s[0] === "face") : steps.findIndex((s) => s[0] === name);
    const list = $("#progress-steps");
    list.replaceChildren(
      ...steps.map((s, i) => h("li", { class: i < at ? "done" : i === at ? "current" : "", title: s[1] })),
    );
    $("#progress-text").textContent =
      KINDS[state.kind].name + " · 第 " + (at + 1) + " 步 / 共 " + steps.length + " 步 · " + steps[at][1];
  }

  let noticeTimer = 0;

  function notice(text) {
    const el = $("#notice");
    clearTimeout(noticeTimer);
    el.textContent = text || "";
    el.hidden = !text;
    if (text) noticeTimer = setTimeout(() => (el.hidden = true), 5000);
  }

  function clearErrors(root) {
    if (!root) return;
    for (const el of $$(".error", root)) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const field of $$(".field.invalid", root)) field.classList.remove("invalid");
    for (const el of $$(".field-error", root)) {
      el.hidden = true;
      el.textContent = "";
    }
  }

  /** Show a refusal where it belongs: under its field when the server names one, else on the screen. */
  function showError(error, root) {
    const err = asError(error);
    const scope = root || section(currentScreen());
    if (!scope) return;
    const fields = err.details && Array.isArray(err.details.errors) ? err.details.errors : [err];
    const elsewhere = [];
    for (const e of fields) {
      const message = e.message_zh || e.messageZh || err.messageZh;
      const name = e.field ? String(e.field).split(".").pop() : "";
      const input = name ? $('[data-field="' + name + '"]', scope) : null;
      const box = input ? input.closest(".field") : null;
      if (box) {
        box.classList.add("invalid");
        const slot = $(".field-error", box);
        slot.textContent = message;
        slot.hidden = false;
      } else if (!elsewhere.includes(message)) {
        elsewhere.push(message);
      }
    }
    if (elsewhere.length) {
      const box = $(".error", scope);
      box.textContent = elsewhere.join("；");
      box.hidden = false;
      box.scrollIntoView({ block: "nearest" });
    }
  }

  /** Run `work` with the button disabled and saying what is happening; errors go to the screen. */
  async function busy(button, label, work) {
    const original = button.textContent;
    button.disabled = true;
    button.textContent = label;
    clearErrors(section(currentScreen()));
    try {
      return await work();
    } catch (error) {
      showError(error);
      return undefined;
    } finally {
      button.disabled = false;
      button.textContent = original;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // SMS codes: one a minute per phone (SPEC §3); the button counts down for the phone typed
  const nextSend = new Map(); // phone → time (ms) a new code may be asked for

  function syncSendButton(input, button) {
    const phone = input.value.trim();
    if (button.dataset.sending) return;
    const left = Math.ceil(((nextSend.get(phone) || 0) - Date.now()) / 1000);
    if (left > 0) {
      button.disabled = true;
      button.textContent = left + " 秒后重发";
    } else {
      button.disabled = false;
      button.textContent = nextSend.has(phone) ? "重新获取" : "获取验证码";
    }
  }

  function watchSendButton(input, button) {
    input.addEventListener("input", () => syncSendButton(input, button));
    setInterval(() => syncSendButton(input, button), 1000);
  }

  function validPhone(phone) {
    return /^1[3-9]\d{9}$/.test(phone);
  }

  async function sendCode(phoneInput, button, purpose) {
    const phone = phoneInput.value.trim();
    clearErrors(section(currentScreen()));
    if (!validPhone(phone)) {
      showError(new ApiError(422, { code: "client.phone", message_zh: "请输入正确的 11 位手机号码", field: "phone" }));
      return;
    }
    button.dataset.sending = "1";
    button.disabled = true;
    button.textContent = "发送中…";
    try {
      const sent = await api("POST", "/v1/auth/sms-codes", { phone, purpose });
      nextSend.set(phone, Date.now() + ((sent && sent.resend_after) || SMS_WAIT) * 1000);
      notice("验证码已发送至 " + phone.slice(0, 3) + "****" + phone.slice(-4) + "，5 分钟内有效");
      showDevSms(phone);
    } catch (error) {
      const err = asError(error);
      const wait = Number(err.details.retry_after || err.details.resend_after || 0);
      if (err.status === 429 && wait > 0) nextSend.set(phone, Date.now() + wait * 1000);
      showError(err);
    } finally {
      delete button.dataset.sending;
      syncSendButton(phoneInput, button);
    }
  }

  /** Local stages only: the SMS the platform kept instead of sending (the route is 404 elsewhere). */
  async function showDevSms(phone) {
    const box = $("#dev-sms");
    const masked = phone.slice(0, 3) + "****" + phone.slice(-4);
    let doc;
    try {
      doc = await api("GET", "/v1/dev/sms-drop?limit=10");
    } catch (_) {
      box.hidden = true;
      return;
    }
    const mine = (doc.messages || []).filter((m) => m.phone === masked);
    if (!mine.length) return;
    box.replaceChildren(
      h("b", { text: "开发环境 · 本地短信（未真实发送）" }),
      h("div", { text: masked + "：" + mine[0].text }),
    );
    box.hidden = false;
  }

  // ---------------------------------------------------------------------------------------------
  // Login
  function signOut(message) {
    for (const key of [STORE.token, STORE.subject, STORE.phone]) sessionStorage.removeItem(key);
    state.reg = null;
    show("login", "手机号登录");
    if (message) notice(message);
  }

  /** The phone and code as typed, checked before asking the server; false (with the error shown) if not. */
  function phoneAndCodeOk(phone, code) {
    if (!validPhone(phone)) {
      showError(new ApiError(422, { code: "client.phone", message_zh: "请输入正确的 11 位手机号码", field: "phone" }));
      return false;
    }
    if (!/^\d{4,8}$/.test(code)) {
      showError(new ApiError(422, { code: "client.code", message_zh: "请输入短信验证码", field: "code" }));
      return false;
    }
    return true;
  }

  async function login(event) {
    event.preventDefault();
    const phone = $("#login-phone").value.trim();
    const code = $("#login-code").value.trim();
    clearErrors(section("login"));
    if (!phoneAndCodeOk(phone, code)) return;
    await busy($("#login-submit"), "登录中…", async () => {
      const session = await api("POST", "/v1/auth/login", { phone, code });
      sessionStorage.setItem(STORE.token, session.token);
      sessionStorage.setItem(STORE.subject, session.subject || "");
      sessionStorage.setItem(STORE.phone, phone.slice(0, 3) + "****" + phone.slice(-4));
      notice("");
      await resumeOrHome();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Home, resume
  function remember(reg) {
    sessionStorage.setItem(STORE.current, JSON.stringify({ kind: state.kind, id: reg.registration_id }));
  }

  function forget() {
    sessionStorage.removeItem(STORE.current);
  }

  function stored() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE.current) || "null");
    } catch (_) {
      return null;
    }
  }

  function home() {
    state.reg = null;
    notice("");
    show("home", "个人用户业务");
    const who = sessionStorage.getItem(STORE.phone);
    $("#home-who").textContent = who ? "当前登录：" + who : "";
    $("#home-resume").hidden = !stored();
  }

  async function resumeOrHome() {
    const saved = stored();
    if (!saved || !KINDS[saved.kind]) {
      home();
      return;
    }
    state.kind = saved.kind;
    try {
      const reg = await api("GET", KINDS[saved.kind].path + "/" + encodeURIComponent(saved.id));
      await render(reg);
    } catch (error) {
      const err = asError(error);
      if (err.status === 401) return;
      const gone = err.status === 404 || err.status === 403;
      if (gone) forget(); // otherwise keep it: "继续办理" tries again
      home();
      if (gone) notice("上次的办理已过期，请重新开始");
      else showError(err);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Render the step the server says is next
  async function render(reg) {
    state.reg = reg;
    remember(reg);
    notice("");
    switch (reg.step) {
      case "confirm_vehicle":
        return screenVehicle(reg);
      case "verify_phone":
        return screenPhone();
      case "possession":
        return screenPossession(reg);
      case "delegation":
        return screenDelegation();
      case "identity":
        return screenIdentity();
      case "documents":
        return screenDocuments(reg);
      case "face":
        return screenFace(reg);
      case "review":
        return show("review", "人工审核");
      case "consents":
        return screenConsents();
      case "submit":
        return screenSubmit(reg);
      default:
        return screenResult(reg);
    }
  }

  async function refresh() {
    const reg = await api("GET", KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id));
    await render(reg);
  }

  /** A step refused because another is due (409 *.step_out_of_order): show the step that is due. */
  async function recover(error) {
    const err = asError(error);
    if (err.status === 409 && /step_out_of_order$/.test(err.code) && state.reg) {
      await refresh();
      notice(err.messageZh);
      return true;
    }
    return false;
  }

  async function step(button, label, work) {
    await busy(button, label, async () => {
      try {
        await work();
      } catch (error) {
        if (!(await recover(error))) throw error;
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // VIN → vehicle
  function screenVin(kind, hint) {
    state.kind = kind;
    state.reg = null;
    show("vin", kind === "registration" ? "车主实名登记" : "车主注销实名");
    $("#vin-title").textContent = kind === "registration" ? "输入车辆识别代号" : "输入要注销的车辆识别代号";
    $("#vin-hint").textContent =
      kind === "registration"
        ? "车辆识别代号（VIN）共 17 位，可在行驶证、车辆合格证或前挡风玻璃左下角查看。"
        : "请输入要注销实名的车辆的完整识别代号（VIN）" + (hint ? "，尾号 " + hint.slice(-6) : "") + "。";
    $("#vin-input").value = "";
    $("#vin-delegated").checked = false;
    $("#vin-delegated-label").hidden = kind !== "registration";
    $("#vin-input").focus();
  }

  async function startByVin(event) {
    event.preventDefault();
    const vin = $("#vin-input").value.replace(/\s+/g, "").toUpperCase();
    $("#vin-input").value = vin;
    clearErrors(section("vin"));
    if (!/^[A-HJ-NPR-Z0-9]{17}$/.test(vin)) {
      showError(
        new ApiError(422, {
          code: "client.vin",
          message_zh: "车辆识别代号应为 17 位字母和数字（不含 I、O、Q）",
          field: "vin",
        }),
      );
      return;
    }
    await busy($("#vin-submit"), "查询中…", async () => {
      const body = state.kind === "registration" ? { vin, delegated: $("#vin-delegated").checked } : { vin };
      const reg = await api("POST", KINDS[state.kind].path, body);
      state.vin = vin; // the sandbox head unit is looked up by it on local stages
      await render(reg);
    });
  }

  function vehicleBlock(vehicle, cards) {
    return [
      h("h3", { text: [vehicle.brand, vehicle.model].filter(Boolean).join(" ") }),
      // Before possession is shown the server tells only the VIN typed: the other rows are left out.
      rows(
        [
          ["车辆识别代号", vehicle.vin_masked],
          ["品牌", vehicle.brand],
          ["车型", vehicle.model],
          ["车身颜色", vehicle.colour],
        ].filter((row) => row[1]),
      ),
      ...(cards || []).map((card) =>
        h(
          "div",
          { class: "sim" },
          h("div", {}, h("b", { text: "车联网卡 " }), card.msisdn_masked, " ", badge(card.state)),
          h("div", { text: "ICCID " + card.iccid_masked }),
          h("div", {
            text:
              (OPERATORS[card.operator] || card.operator || "") +
              (card.functions && card.functions.length
                ? " · 已开通：" + card.functions.map((f) => FUNCTIONS[f] || f).join("、")
                : ""),
          }),
        ),
      ),
    ];
  }

  function badge(cardState) {
    return h("span", { class: "badge " + cardState, text: CARD_STATES[cardState] || cardState });
  }

  function screenVehicle(reg) {
    show("confirm_vehicle", "确认车辆");
    $("#vehicle-card").replaceChildren(...vehicleBlock(reg.vehicle, reg.cards));
  }

  // ---------------------------------------------------------------------------------------------
  // Owner/user phone
  function screenPhone() {
    show("verify_phone", "手机号验证");
    $("#owner-code").value = "";
    $("#phone-hint").textContent =
      state.kind === "registration"
        ? "请填写车主或使用人本人的手机号码，并输入收到的短信验证码。"
        : "请填写登记时使用的手机号码，并输入收到的短信验证码。";
  }

  async function verifyPhone(event) {
    event.preventDefault();
    const phone = $("#owner-phone").value.trim();
    const code = $("#owner-code").value.trim();
    clearErrors(section("verify_phone"));
    if (!phoneAndCodeOk(phone, code)) return;
    await step($("#phone-submit"), "验证中…", async () => {
      const path = KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/phone";
      await render(await api("POST", path, { phone, code }));
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Possession of the car: the head unit's code, or a photo of the 行驶证 whose VIN is read
  function screenPossession(reg) {
    show("possession", "车辆持有");
    const p = reg.possession || {};
    const claimed = Boolean(p.claimed_by_other);
    $("#possession-form").hidden = claimed;
    $("#doc-vehicle_licence").hidden = claimed;
    $("#possession-claimed").hidden = !claimed;
    $("#possession-contest").hidden = Boolean(p.contest_case_id);
    $("#possession-contested").hidden = !p.contest_case_id;
    // 过户: registered to someone else with nothing pending at the operator: the buyer may take it over.
    $("#possession-transferable").hidden = !(claimed && p.transferable);
    $("#head-unit-code").value = "";
    const box = $("#doc-vehicle_licence");
    box.dataset.state = "empty";
    $(".doc-status", box).textContent = "或拍摄行驶证主页（车辆识别代号须清晰可见）";
  }

  function possessionPath(tail) {
    return KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + tail;
  }

  /** A refusal of the possession step: a car claimed by someone else shows the way to contest. */
  async function possessionRefused(error, root) {
    const err = asError(error);
    if (err.code === "possession.vehicle_claimed") return refresh();
    if (!(await recover(err))) showError(err, root);
  }

  let headUnitSendAt = 0; // time (ms) a new head-unit code may be asked for

  async function sendHeadUnitCode() {
    const button = $("#head-unit-send");
    clearErrors(section("possession"));
    button.disabled = true;
    button.textContent = "发送中…";
    try {
      const sent = await api("POST", possessionPath("/possession/head-unit-code"), {});
      headUnitSendAt = Date.now() + ((sent && sent.resend_after_seconds) || SMS_WAIT) * 1000;
      notice("验证码已发送到车机，请在车内屏幕上查看，5 分钟内有效");
      showDevHeadUnit();
    } catch (error) {
      const err = asError(error);
      const wait = Number(err.details.retry_after || 0);
      if (err.status === 429 && wait > 0) headUnitSendAt = Date.now() + wait * 1000;
      await possessionRefused(err, $("#possession-form"));
    } finally {
      syncHeadUnitSend();
    }
  }

  /** Local stages only: the code the sandbox telematics showed on the head unit (404 elsewhere). */
  async function showDevHeadUnit() {
    if (!state.vin) return;
    let doc;
    try {
      doc = await api("GET", "/v1/dev/head-unit/" + encodeURIComponent(state.vin));
    } catch (_) {
      return;
    }
    if (!doc.messages || !doc.messages.length) return;
    const box = $("#dev-sms");
    box.replaceChildren(
      h("b", { text: "开发环境 · 模拟车机屏幕" }),
      h("div", { text: doc.messages[0].text }),
    );
    box.hidden = false;
  }

  function syncHeadUnitSend() {
    const button = $("#head-unit-send");
    const left = Math.ceil((headUnitSendAt - Date.now()) / 1000);
    button.disabled = left > 0;
    button.textContent = left > 0 ? left + " 秒后重发" : headUnitSendAt ? "重新发送" : "发送到车机";
  }

  async function proveByHeadUnit(event) {
    event.preventDefault();
    const code = $("#head-unit-code").value.trim();
    const form = $("#possession-form");
    clearErrors(section("possession"));
    if (!/^\d{4,8}$/.test(code)) {
      const zh = "请输入车机屏幕上显示的验证码";
      showError(new ApiError(422, { code: "client.code", message_zh: zh, field: "code" }), form);
      return;
    }
    await busy($("#head-unit-submit"), "验证中…", async () => {
      try {
        await render(await api("POST", possessionPath("/possession"), { method: "head_unit", code }));
      } catch (error) {
        await possessionRefused(error, form);
      }
    });
  }

  async function onLicenceChosen(input) {
    const file = takeFile(input);
    if (!file) return;
    const box = $("#doc-vehicle_licence");
    const status = (text) => {
      box.dataset.state = "busy";
      $(".doc-status", box).textContent = text;
    };
    showPreview(box, file);
    clearErrors(section("possession"));
    try {
      await storePhoto("vehicle_licence", file, status);
      status("正在识别车辆识别代号…");
      const body = { method: "vehicle_document", document: "vehicle_licence" };
      await render(await api("POST", possessionPath("/possession"), body));
    } catch (error) {
      const err = asError(error);
      box.dataset.state = "failed";
      $(".doc-status", box).textContent = err.messageZh.replace(/[。.！!]+$/, "") + "，请重新拍摄";
      await possessionRefused(err, section("possession"));
    }
  }

  /** 过户: go on as the buyer of the car registered to someone else (the same checks follow). */
  async function transferPossession() {
    await busy($("#possession-transfer"), "提交中…", async () => {
      try {
        await render(await api("POST", possessionPath("/transfer"), {}));
        notice("已转为过户办理，请继续核验身份");
      } catch (error) {
        if (!(await recover(error))) showError(error, $("#possession-claimed"));
      }
    });
  }

  async function contestPossession() {
    await busy($("#possession-contest"), "提交中…", async () => {
      try {
        await render(await api("POST", possessionPath("/contest"), {}));
        notice("异议已提交人工审核");
      } catch (error) {
        if (!(await recover(error))) showError(error, $("#possession-claimed"));
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Identity
  function screenIdentity() {
    show("identity", "证件信息");
    const hint = $('section[data-screen="identity"] .hint');
    hint.textContent =
      state.reg && state.reg.delegated
        ? "请填写您（受托人）本人的证件信息，稍后将与您的证件照片和人脸核对。"
        : "请按身份证上的内容如实填写，稍后将与证件照片识别结果核对。";
  }

  // ---------------------------------------------------------------------------------------------
  // 委托登记: the owner's identity and the authorization letter
  const DELEGATION_DOCS = {
    owner_id_front: "请拍摄车主身份证人像面",
    owner_id_back: "请拍摄车主身份证国徽面（有效期限）",
    authorization_letter: "请拍摄车主签署的授权委托书",
  };

  function screenDelegation() {
    show("delegation", "委托信息");
    const given = state.reg && state.reg.delegation;
    // Saved but not yet confirmed by the owner: the owner's code is asked for (the form stays editable).
    delegationPart(Boolean(given && !given.confirmed && given.trustee_named !== false));
    for (const [kind, prompt] of Object.entries(DELEGATION_DOCS)) {
      const box = $("#doc-" + kind);
      box.dataset.state = "empty";
      $(".doc-status", box).textContent = prompt;
    }
    if (given && given.trustee_named === false) {
      const box = $(".error", $("#delegation-form"));
      box.textContent = "授权委托书上的受托人不是您本人：请上传写明您为受托人的授权委托书后重新提交";
      box.hidden = false;
    }
  }

  /** The delegation form, or the owner's confirmation of the delegation saved. */
  function delegationPart(confirming) {
    const given = state.reg && state.reg.delegation;
    $("#delegation-form").hidden = confirming;
    $("#delegation-confirm").hidden = !confirming;
    $("#delegation-code").value = "";
    if (confirming && given) {
      $("#delegation-confirm-hint").textContent =
        "委托信息已保存。请发送验证码到车主手机 " +
        (given.owner_phone_masked || "") +
        "，并请车主本人把验证码告诉您，以确认车主同意委托您办理。";
    }
  }

  let delegationSendAt = 0; // time (ms) a new owner's code may be asked for

  async function sendDelegationCode() {
    const button = $("#delegation-send");
    clearErrors(section("delegation"));
    button.disabled = true;
    button.textContent = "发送中…";
    try {
      const path =
        KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/delegation/code";
      const sent = await api("POST", path, {});
      delegationSendAt = Date.now() + ((sent && sent.resend_after) || SMS_WAIT) * 1000;
      const masked = (state.reg.delegation && state.reg.delegation.owner_phone_masked) || "";
      notice("验证码已发送至车主手机 " + masked + "，5 分钟内有效");
      if (masked) showDevSms(masked);
    } catch (error) {
      const err = asError(error);
      const wait = Number(err.details.retry_after || err.details.resend_after || 0);
      if (err.status === 429 && wait > 0) delegationSendAt = Date.now() + wait * 1000;
      if (!(await recover(err))) showError(err, $("#delegation-confirm"));
    } finally {
      syncDelegationSend();
    }
  }

  function syncDelegationSend() {
    const button = $("#delegation-send");
    const left = Math.ceil((delegationSendAt - Date.now()) / 1000);
    button.disabled = left > 0;
    button.textContent = left > 0 ? left + " 秒后重发" : delegationSendAt ? "重新发送" : "发送到车主手机";
  }

  async function confirmDelegation(event) {
    event.preventDefault();
    const code = $("#delegation-code").value.trim();
    clearErrors(section("delegation"));
    const form = $("#delegation-confirm");
    if (!/^\d{4,8}$/.test(code)) {
      const zh = "请输入车主收到的短信验证码";
      showError(new ApiError(422, { code: "client.code", message_zh: zh, field: "code" }), form);
      return;
    }
    const button = $("#delegation-confirm-submit");
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "确认中…";
    try {
      const path =
        KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/delegation/confirm";
      await render(await api("POST", path, { code }));
    } catch (error) {
      if (!(await recover(error))) showError(error, form);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  }

  async function onDelegationDoc(kind, input) {
    const file = takeFile(input);
    if (!file) return;
    const box = $("#doc-" + kind);
    showPreview(box, file);
    clearErrors(section("delegation"));
    const status = (text) => {
      box.dataset.state = "busy";
      $(".doc-status", box).textContent = text;
    };
    try {
      await storePhoto(kind, file, status);
      box.dataset.state = "done";
      $(".doc-status", box).textContent = "已上传";
    } catch (error) {
      const err = asError(error);
      if (await recover(err)) return;
      box.dataset.state = "failed";
      $(".doc-status", box).textContent = err.messageZh.replace(/[。.！!]+$/, "") + "，请重新拍摄";
    }
  }

  async function saveDelegation(event) {
    event.preventDefault();
    const owner = {
      id_type: $("#owner-id-type").value,
      id_number: $("#owner-id-number").value.replace(/\s+/g, "").toUpperCase(),
      name: $("#owner-name").value.trim(),
      address: $("#owner-address").value.trim() || null,
    };
    const ownerPhone = $("#owner-mobile").value.trim();
    clearErrors(section("delegation"));
    if (!owner.id_number || !owner.name) {
      const field = !owner.id_number ? "owner.id_number" : "owner.name";
      const zh = !owner.id_number ? "请填写车主证件号码" : "请填写车主姓名";
      showError(new ApiError(422, { code: "client.required", message_zh: zh, field }));
      return;
    }
    if (!validPhone(ownerPhone)) {
      const zh = "请填写车主本人的 11 位手机号码";
      showError(new ApiError(422, { code: "client.phone", message_zh: zh, field: "owner_phone" }));
      return;
    }
    await step($("#delegation-submit"), "核对中…", async () => {
      const path = KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/delegation";
      await render(await api("POST", path, { owner, owner_phone: ownerPhone }));
    });
  }

  async function saveIdentity(event) {
    event.preventDefault();
    const body = {
      id_type: $("#id-type").value,
      id_number: $("#id-number").value.replace(/\s+/g, "").toUpperCase(),
      name: $("#id-name").value.trim(),
      address: $("#id-address").value.trim(),
    };
    $("#id-number").value = body.id_number;
    clearErrors(section("identity"));
    const missing = [
      ["id_number", "请填写证件号码"],
      ["name", "请填写姓名"],
      ["address", "请填写住址"],
    ].filter(([key]) => !body[key]);
    if (missing.length) {
      showError(
        new ApiError(422, {
          code: "client.required",
          message_zh: missing[0][1],
          field: missing[0][0],
          details: { errors: missing.map(([field, zh]) => ({ field, message_zh: zh })) },
        }),
      );
      return;
    }
    await step($("#identity-submit"), "保存中…", async () => {
      await api("PUT", "/v1/flows/" + encodeURIComponent(state.reg.flow_id) + "/identity", body);
      state.docsDone = {};
      await refresh();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // ID card photos: presigned POST straight to storage, then validate and read (OCR)
  async function screenDocuments(reg) {
    show("documents", "上传证件照片");
    delete section("documents").dataset.ready;
    state.docsDone = {};
    for (const kind of ["id_front", "id_back"]) docState(kind, "empty", null);
    $("#docs-consent").hidden = true;
    $("#docs-photos").hidden = false;
    try {
      const flow = await api("GET", "/v1/flows/" + encodeURIComponent(reg.flow_id));
      for (const kind of ["id_front", "id_back"]) {
        if (flow.checks && flow.checks["ocr_" + kind] === "passed") {
          state.docsDone[kind] = true;
          docState(kind, "done", "已上传并识别");
        }
      }
      // The ID front's portrait is face processing: the biometric consent comes first, on its own.
      if (!(flow.checks && flow.checks.biometric_consent === "passed")) await showDocsConsent();
    } catch (_) {
      // Not knowing what was done before only means asking for both photos again.
    }
    updateDocumentsNext();
    section("documents").dataset.ready = "1";
  }

  /** 人脸信息处理单独同意, before the ID card photos (the server looks for the portrait on the front). */
  async function showDocsConsent() {
    const doc = (await api("GET", "/v1/consents")).documents.find((d) => d.kind === "biometric_consent");
    state.faceConsent = doc;
    $("#docs-consent-title").textContent = "单独同意 · " + doc.title + "（" + doc.version + "）";
    $("#docs-consent-text").replaceChildren(...markdown(doc.text));
    $("#docs-consent-check").checked = false;
    $("#docs-consent-submit").disabled = true;
    $("#docs-photos").hidden = true;
    $("#docs-consent").hidden = false;
  }

  async function giveDocsConsent() {
    const doc = state.faceConsent;
    await step($("#docs-consent-submit"), "提交中…", async () => {
      const client = { user_agent: navigator.userAgent.slice(0, 300), screen: screen.width + "x" + screen.height };
      const path = "/v1/flows/" + encodeURIComponent(state.reg.flow_id) + "/biometric-consent";
      await api("POST", path, { version: doc.version, sha256: doc.sha256, client });
      $("#docs-consent").hidden = true;
      $("#docs-photos").hidden = false;
    });
  }

  function docState(kind, stateName, text) {
    const box = $("#doc-" + kind);
    box.dataset.state = stateName;
    const label = kind === "id_front" ? "人像面" : "国徽面";
    $(".doc-status", box).textContent = text || "请拍摄身份证" + label;
    if (stateName === "empty") {
      const img = $("img", box);
      img.hidden = true;
      img.removeAttribute("src");
    }
  }

  function updateDocumentsNext() {
    $("#documents-next").disabled = !(state.docsDone.id_front && state.docsDone.id_back);
  }

  /** The chosen file, the input cleared so that choosing the same photo again fires once more. */
  function takeFile(input) {
    const file = input.files && input.files[0];
    input.value = "";
    return file || null;
  }

  function showPreview(box, file) {
    const img = $("img", box);
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(file);
    img.hidden = false;
  }

  /** One photo of ``kind`` into the flow: prepared, presigned, uploaded to storage, checked by the
   * server. ``status`` hears each stage. */
  async function storePhoto(kind, file, status) {
    const flowId = encodeURIComponent(state.reg.flow_id);
    status("正在处理照片…");
    const photo = await prepareDocument(file);
    status("正在上传…");
    const post = await api("POST", "/v1/flows/" + flowId + "/uploads", { kind, content_type: photo.type });
    if (photo.blob.size > post.max_bytes) {
      throw new ApiError(413, {
        code: "client.too_large",
        message_zh: "图片过大，不能超过 " + Math.floor(post.max_bytes / 1048576) + " MB",
      });
    }
    await uploadToStorage(post, photo.blob);
    status("正在检查照片…");
    await api("POST", "/v1/flows/" + flowId + "/documents", { kind, key: post.key });
  }

  async function onDocumentChosen(kind, input) {
    const file = takeFile(input);
    if (!file) return;
    showPreview($("#doc-" + kind), file);
    state.docsDone[kind] = false;
    updateDocumentsNext();
    clearErrors(section("documents"));
    try {
      await storePhoto(kind, file, (text) => docState(kind, "busy", text));
      docState(kind, "busy", "正在识别证件…");
      const read = await api("POST", "/v1/flows/" + encodeURIComponent(state.reg.flow_id) + "/ocr/" + kind);
      if (read && read.review_case_id) {
        // A passport or permit: a reviewer reads it; the registration shows the review until decided.
        docState(kind, "done", "已提交人工审核");
        await refresh();
        return;
      }
      state.docsDone[kind] = true;
      docState(kind, "done", "已上传并识别");
    } catch (error) {
      const err = asError(error);
      if (await recover(err)) return;
      // A refused photo (422/413) can be retaken; anything else is said as the server says it.
      const message = err.messageZh.replace(/[。.！!]+$/, "");
      const retake = (err.status === 422 || err.status === 413) && err.code !== "id_card.expired";
      docState(kind, "failed", message + (retake ? "，请重新拍摄" : ""));
      if (/^ocr\./.test(err.code)) {
        showError(new ApiError(422, { code: err.code, message_zh: message + "。请重新拍摄，或返回修改证件信息。" }));
      }
    }
    updateDocumentsNext();
  }

  /** The photo as the platform takes it: JPEG/PNG/BMP as chosen, anything else (or too big) as a JPEG. */
  async function prepareDocument(file) {
    if (DOC_TYPES.includes(file.type) && file.size <= 8 * 1048576) return { blob: file, type: file.type };
    const blob = await reencode(file, 2560, 0.9);
    return { blob, type: "image/jpeg" };
  }

  async function decode(file) {
    if (window.createImageBitmap) {
      try {
        return await createImageBitmap(file, { imageOrientation: "from-image" });
      } catch (_) {
        // fall back to an <img>
      }
    }
    const url = URL.createObjectURL(file);
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      return img;
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  async function reencode(file, longSide, quality) {
    let image;
    try {
      image = await decode(file);
    } catch (_) {
      throw new ApiError(415, { code: "client.unreadable", message_zh: "无法读取该照片，请换一张 JPG 或 PNG 照片" });
    }
    const width = image.width;
    const height = image.height;
    const scale = Math.min(1, longSide / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    if (image.close) image.close();
    return await new Promise((resolve, reject) =>
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("toBlob"))), "image/jpeg", quality),
    );
  }

  /** POST the form the server presigned, straight to storage (another origin: the answer is opaque). */
  async function uploadToStorage(post, blob) {
    const form = new FormData();
    for (const [name, value] of Object.entries(post.fields)) form.append(name, value);
    form.append("file", blob, "photo");
    try {
      await fetch(post.url, { method: "POST", body: form, mode: "no-cors", credentials: "omit" });
    } catch (_) {
      throw new ApiError(0, { code: "upload.network", message_zh: "照片上传失败，请检查网络后重试" });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Face: liveness challenge + match with the ID portrait (人脸检测 / 人证一致)
  let camera = null;

  function stopCamera() {
    if (camera) {
      for (const track of camera.getTracks()) track.stop();
      camera = null;
    }
    const video = $("#face-video");
    if (video) {
      video.srcObject = null;
      video.hidden = true;
    }
    const stage = $(".face-stage");
    if (stage) stage.classList.remove("live");
  }

  function faceButtons(mode) {
    const canCamera = Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    $("#face-camera").hidden = mode !== "ready" || !canCamera;
    // Photos chosen from the album are only for devices without a camera: the check wants one
    // continuous capture, which the camera gives.
    $("#face-files-label").hidden = mode !== "ready" || canCamera;
    $("#face-retry").hidden = mode !== "retry";
    $("#face-review").hidden = mode !== "review" && mode !== "retry-review";
    if (mode === "retry-review") $("#face-retry").hidden = true;
  }

  function faceResult(ok, title, reasons) {
    const box = $("#face-result");
    box.className = "face-result " + (ok ? "ok" : "bad");
    box.replaceChildren(
      h("strong", { text: title }),
      reasons && reasons.length ? h("ul", {}, reasons.map((r) => h("li", { text: FACE_REASONS[r] || "核验未通过（" + r + "）" }))) : null,
    );
    box.hidden = false;
  }

  async function screenFace(reg) {
    show("face", "人脸检测");
    $("#face-result").hidden = true;
    $("#face-consent").hidden = true;
    faceButtons("none");
    let flow;
    try {
      flow = await api("GET", "/v1/flows/" + encodeURIComponent(reg.flow_id));
    } catch (error) {
      showError(error);
      return;
    }
    if (flow.checks && flow.checks.biometric_consent === "passed") {
      await newSession(reg);
      return;
    }
    await showFaceConsent();
  }

  /** 人脸信息处理单独同意: read and agreed to on its own, before any face is captured. */
  async function showFaceConsent() {
    $("#face-instruction").textContent = "开始人脸检测前，请阅读并单独同意人脸信息处理";
    let doc;
    try {
      doc = (await api("GET", "/v1/consents")).documents.find((d) => d.kind === "biometric_consent");
    } catch (error) {
      showError(error);
      return;
    }
    state.faceConsent = doc;
    $("#face-consent-title").textContent = "单独同意 · " + doc.title + "（" + doc.version + "）";
    $("#face-consent-text").replaceChildren(...markdown(doc.text));
    $("#face-consent-check").checked = false;
    $("#face-consent-submit").disabled = true;
    $("#face-consent").hidden = false;
  }

  async function giveFaceConsent() {
    const doc = state.faceConsent;
    await step($("#face-consent-submit"), "提交中…", async () => {
      const client = { user_agent: navigator.userAgent.slice(0, 300), screen: screen.width + "x" + screen.height };
      const path = "/v1/flows/" + encodeURIComponent(state.reg.flow_id) + "/biometric-consent";
      await api("POST", path, { version: doc.version, sha256: doc.sha256, client });
      $("#face-consent").hidden = true;
      await newSession(state.reg);
    });
  }

  async function newSession(reg) {
    const target = section("face");
    state.session = null;
    target.dataset.direction = "";
    $("#face-instruction").textContent = "正在准备…";
    $("#face-arrow").textContent = "";
    $("#face-attempts").textContent = "";
    clearErrors(target);
    try {
      const session = await api("POST", "/v1/flows/" + encodeURIComponent(reg.flow_id) + "/liveness-sessions");
      const direction = session.challenge && session.challenge.direction;
      if (!direction || !DIRECTIONS[direction]) {
        $("#face-instruction").textContent = "当前环境暂不支持人脸检测";
        showError(new ApiError(0, { code: "client.liveness", message_zh: "请在车联网卡实名登记小程序中完成人脸检测" }));
        return;
      }
      state.session = session;
      target.dataset.direction = direction;
      target.dataset.session = session.session_id;
      const min = session.challenge.min_frames || 3;
      const max = session.challenge.max_frames || 8;
      $("#face-instruction").textContent = DIRECTIONS[direction][0];
      $("#face-arrow").textContent = DIRECTIONS[direction][1];
      $("#face-attempts").textContent =
        "开始后请正对屏幕，看到提示后缓慢" + DIRECTIONS[direction][0].replace("请", "") + "。剩余 " + session.attempts_left + " 次核验机会";
      $("#face-files-label").firstChild.textContent = "无法使用摄像头？选择 " + min + "–" + max + " 张照片";
      faceButtons("ready");
    } catch (error) {
      const err = asError(error);
      if (await recover(err)) return;
      $("#face-instruction").textContent = "暂时无法进行人脸检测";
      showError(err);
      if (err.status === 429 || err.code === "face.attempts_exhausted") faceButtons("review");
      else faceButtons("retry");
    }
  }

  async function captureWithCamera() {
    const session = state.session;
    if (!session) return;
    const button = $("#face-camera");
    button.disabled = true;
    clearErrors(section("face"));
    try {
      camera = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
        audio: false,
      });
    } catch (_) {
      button.disabled = false;
      button.hidden = true;
      $("#face-files-label").hidden = false; // the camera cannot be used here: photos instead
      showError(new ApiError(0, { code: "client.camera", message_zh: "无法打开摄像头，请允许使用摄像头，或选择照片完成检测" }));
      return;
    }
    const video = $("#face-video");
    video.srcObject = camera;
    video.hidden = false;
    $(".face-stage").classList.add("live");
    faceButtons("none");
    try {
      await video.play();
      await videoReady(video);
      const [text, arrow] = DIRECTIONS[session.challenge.direction];
      const want = Math.min(Math.max(5, session.challenge.min_frames || 3), session.challenge.max_frames || 8);
      const frames = [];
      $("#face-instruction").textContent = "请正对屏幕";
      $("#face-arrow").textContent = "";
      const times = [];
      await sleep(1000);
      frames.push(snapshot(video));
      times.push(Date.now());
      $("#face-instruction").textContent = text;
      $("#face-arrow").textContent = arrow;
      while (frames.length < want) {
        $("#face-attempts").textContent = "正在采集 " + frames.length + "/" + want;
        await sleep(450);
        frames.push(snapshot(video));
        times.push(Date.now());
      }
      stopCamera();
      await sendFrames(frames, times);
    } catch (error) {
      stopCamera();
      showError(error);
      faceButtons("ready");
    } finally {
      button.disabled = false;
    }
  }

  /** Resolves once the camera delivers pictures (a slow camera first shows nothing: no frame of it counts). */
  function videoReady(video, timeoutMs = 5000) {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      (function check() {
        if (video.readyState >= 2 && video.videoWidth > 0) return resolve();
        if (Date.now() - started > timeoutMs) {
          return reject(new ApiError(0, { code: "client.camera", message_zh: "摄像头没有画面，请重新打开摄像头，或选择照片完成检测" }));
        }
        setTimeout(check, 50);
      })();
    });
  }

  function snapshot(video) {
    const scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.9).split(",")[1];
  }

  function base64(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",")[1]);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  async function onFramesChosen(input) {
    const files = Array.from(input.files || []);
    input.value = "";
    const session = state.session;
    if (!session || !files.length) return;
    clearErrors(section("face"));
    const min = session.challenge.min_frames || 3;
    const max = session.challenge.max_frames || 8;
    if (files.length < min || files.length > max) {
      showError(
        new ApiError(422, {
          code: "client.frames",
          message_zh: "请选择 " + min + "–" + max + " 张照片（已选 " + files.length + " 张），按转头的先后顺序",
        }),
      );
      return;
    }
    faceButtons("none");
    $("#face-instruction").textContent = "正在读取照片…";
    try {
      const frames = [];
      for (const file of files) {
        const ok = file.type === "image/jpeg" && file.size <= MAX_FRAME_BYTES;
        frames.push(await base64(ok ? file : await reencode(file, 960, 0.85)));
      }
      // A burst taken with the phone's own camera app: the times the photos were taken.
      await sendFrames(frames, files.map((file) => file.lastModified));
    } catch (error) {
      showError(error);
      faceButtons("ready");
    }
  }

  /** The burst, with the session's capture nonce and each frame's capture time (ms). */
  async function sendFrames(frames, times) {
    const session = state.session;
    const flowId = encodeURIComponent(state.reg.flow_id);
    $("#face-instruction").textContent = "正在核验，请稍候…";
    $("#face-arrow").textContent = "…";
    $("#face-attempts").textContent = "";
    let outcome;
    try {
      outcome = await api(
        "POST",
        "/v1/flows/" + flowId + "/liveness-sessions/" + encodeURIComponent(session.session_id) + "/result",
        { frames, nonce: session.challenge.nonce || null, timestamps_ms: times },
      );
    } catch (error) {
      const err = asError(error);
      if (await recover(err)) return;
      showError(err);
      $("#face-instruction").textContent = "核验未完成";
      $("#face-arrow").textContent = "";
      if (err.code === "face.attempts_exhausted" || err.status === 429) faceButtons("review");
      else if (/^liveness\.session_(expired|used|unknown)$/.test(err.code) || err.code === "liveness.flow_changed")
        await newSession(state.reg);
      else if (/^liveness\.frame/.test(err.code) || /^liveness\.(frames_count|capture_problem)$/.test(err.code))
        faceButtons("ready");
      else if (err.code === "liveness.sessions_exhausted") faceButtons("none");
      else faceButtons("retry");
      return;
    }
    state.session = null;
    if (outcome.passed) {
      $("#face-instruction").textContent = "人脸核验通过";
      $("#face-arrow").textContent = "✓";
      faceResult(true, "人脸核验通过", []);
      await sleep(600);
      await refresh();
      return;
    }
    $("#face-instruction").textContent = "人脸核验未通过";
    $("#face-arrow").textContent = "";
    const left = outcome.attempts_left;
    faceResult(false, "人脸核验未通过" + (left > 0 ? "，还可以再试 " + left + " 次" : "，核验次数已用完"), outcome.reasons);
    if (outcome.review_available) faceButtons(left > 0 ? "retry" : "retry-review");
    else faceButtons(left > 0 ? "retry" : "none");
    if (!outcome.review_available && left <= 0) {
      showError(new ApiError(429, { code: "client.attempts", message_zh: "今日核验次数已用完，请明天再试或前往经销商办理" }));
    }
  }

  async function requestReview() {
    await step($("#face-review"), "提交中…", async () => {
      await api("POST", "/v1/flows/" + encodeURIComponent(state.reg.flow_id) + "/review");
      await refresh();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Consents (实名登记协议, 实名制责任告知书, 人脸信息处理单独同意)
  function markdown(text) {
    // The texts are short Markdown: headings, lists and paragraphs (rendered as text, never as markup).
    const out = [];
    let list = null;
    for (const raw of text.split(/\r?\n/)) {
      const line = raw.trim();
      if (!line || line.startsWith("#")) {
        list = null;
        continue;
      }
      const item = line.match(/^(?:[-*]|\d+[.、])\s*(.*)$/);
      if (item) {
        if (!list) {
          list = h(/^\d/.test(line) ? "ol" : "ul", {});
          out.push(list);
        }
        list.append(h("li", { text: item[1] }));
      } else {
        list = null;
        out.push(h("p", { text: line }));
      }
    }
    return out;
  }

  async function screenConsents() {
    show("consents", "同意协议");
    const list = $("#consent-list");
    list.replaceChildren(h("p", { class: "hint", text: "正在加载协议…" }));
    $("#consents-submit").disabled = true;
    try {
      const doc = await api("GET", "/v1/consents");
      state.consents = doc.documents;
    } catch (error) {
      list.replaceChildren();
      showError(error);
      return;
    }
    // The biometric consent was given on its own before the face step.
    const ordered = state.consents.filter((d) => d.kind !== "biometric_consent");
    list.replaceChildren(
      ...ordered.map((d) => {
        const biometric = d.kind === "biometric_consent";
        return h(
          "div",
          { class: "consent" + (biometric ? " biometric" : "") },
          h("h3", { text: (biometric ? "单独同意 · " : "") + d.title + "（" + d.version + "）" }),
          h("div", { class: "consent-text", tabindex: "0" }, markdown(d.text)),
          h(
            "label",
            { class: "consent-check" },
            h("input", {
              type: "checkbox",
              id: "consent-" + d.kind,
              "data-kind": d.kind,
              onchange: updateConsentButton,
            }),
            h("span", {
              text: biometric ? "我单独同意平台按上述方式处理我的人脸信息" : "我已阅读并同意《" + d.title + "》",
            }),
          ),
        );
      }),
    );
    updateConsentButton();
  }

  function updateConsentButton() {
    const boxes = $$('#consent-list input[type="checkbox"]');
    $("#consents-submit").disabled = !(boxes.length && boxes.every((b) => b.checked));
  }

  async function giveConsents() {
    const checked = new Set($$('#consent-list input[type="checkbox"]:checked').map((b) => b.dataset.kind));
    const accepted = state.consents
      .filter((d) => checked.has(d.kind))
      .map((d) => ({ kind: d.kind, version: d.version, sha256: d.sha256 }));
    await step($("#consents-submit"), "提交中…", async () => {
      const path = KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/consents";
      const client = { user_agent: navigator.userAgent.slice(0, 300), screen: screen.width + "x" + screen.height };
      await render(await api("POST", path, { accepted, client }));
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Submit and result
  function screenSubmit(reg) {
    const registering = state.kind === "registration";
    show("submit", registering ? "确认登记" : "确认注销");
    $("#submit-title").textContent = registering ? "确认并提交登记" : "确认注销实名";
    $("#submit-hint").textContent = registering
      ? "提交后，登记信息将推送至电信企业确认；确认后车联网卡开通必要功能。"
      : "注销后，车联网卡将仅保留紧急呼叫等必要功能，如需使用须重新登记。";
    $("#submit-button").textContent = registering ? "提交登记" : "确认注销";
    // Who is registering, as the server keeps it (masked), read from the verification flow. The rows
    // are there from the start so that nothing moves under the person's finger when they fill in.
    const name = h("dd", { text: "…" });
    const number = h("dd", { text: "…" });
    const person = h(
      "dl",
      { class: "rows" },
      reg.phone_masked ? h("div", {}, h("dt", { text: "联系电话" }), h("dd", { text: reg.phone_masked })) : null,
      h("div", {}, h("dt", { text: registering ? "登记人" : "注销人" }), name),
      h("div", {}, h("dt", { text: "证件号码" }), number),
    );
    $("#submit-card").replaceChildren(...vehicleBlock(reg.vehicle, reg.cards), person);
    api("GET", "/v1/flows/" + encodeURIComponent(reg.flow_id))
      .then((flow) => {
        const id = (flow && flow.identity) || {};
        name.textContent = id.name || "—";
        number.textContent = id.id_number || "—";
      })
      .catch(() => {
        name.textContent = number.textContent = "—";
      });
  }

  async function submit() {
    await step($("#submit-button"), "提交中…", async () => {
      const path = KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/submit";
      await render(await api("POST", path));
    });
  }

  function screenResult(reg) {
    const registering = state.kind === "registration";
    show("result", registering ? "确认登记结果" : "确认注销结果");
    const outcome = reg.step;
    const target = section("result");
    target.dataset.result = outcome;
    $("#result-title").textContent = registering ? "确认登记结果" : "确认注销结果";
    const mark = $("#result-mark");
    const reason = reg.result && reg.result.reason_zh;
    $("#result-reason").textContent = "";
    if (outcome === "pending") {
      mark.className = "result-mark wait";
      $("#result-text").textContent = registering ? "已提交，等待电信企业确认…" : "已提交注销，等待电信企业确认…";
      $("#result-reason").textContent = pendingNext(reg);
      startPolling();
    } else if (outcome === "registered" || outcome === "deregistered") {
      mark.className = "result-mark ok";
      $("#result-text").textContent = outcome === "registered" ? "实名登记成功" : "实名注销成功";
      if (transferring(reg) && outcome === "registered") $("#result-text").textContent = "过户实名登记成功";
      $("#result-reason").textContent =
        outcome === "registered" ? "车联网卡已开通必要功能。" : "车联网卡已恢复为仅紧急呼叫。";
      forget();
    } else if (outcome === "rejected") {
      mark.className = "result-mark bad";
      $("#result-text").textContent = registering ? "实名登记未通过" : "实名注销未通过";
      if (transferring(reg)) $("#result-text").textContent = "过户未通过，原登记不变";
      $("#result-reason").textContent = reason || "请核对信息后重新办理，或前往电信企业营业厅办理。";
      forget();
    } else {
      mark.className = "result-mark";
      $("#result-text").textContent = "当前状态：" + outcome;
    }
    $("#result-card").replaceChildren(...vehicleBlock(reg.vehicle, reg.cards));
  }

  /** 过户: the buyer's registration of a car registered to someone else. */
  function transferring(reg) {
    return Boolean(reg.possession && reg.possession.transfer);
  }

  /** What happens next while the operator has it, as the server says (`result.next`). */
  const NEXT = {
    waiting_operator: "结果通常在几分钟内返回，届时以短信通知您。",
    checking_with_operator: "电信企业尚未答复，平台正在向电信企业查询办理结果，您无需重新办理；结果将以短信通知您。",
  };

  function pendingNext(reg) {
    const next = reg.result && reg.result.next;
    return NEXT[next] || NEXT.waiting_operator;
  }

  function startPolling() {
    stopPolling();
    state.pollStarted = Date.now();
    const tick = async () => {
      if (currentScreen() !== "result" || !state.reg) return;
      try {
        const reg = await api("GET", KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id));
        if (reg.step === "pending") {
          state.reg = reg;
          $("#result-reason").textContent = pendingNext(reg);
          if (Date.now() - state.pollStarted > 120000 && !(reg.result && reg.result.next === "checking_with_operator")) {
            $("#result-reason").textContent = "电信企业确认时间较长，您可以稍后在「我的车辆」中查看结果。";
          }
          state.pollTimer = setTimeout(tick, POLL_MS);
        } else {
          await render(reg);
        }
      } catch (error) {
        if (asError(error).status === 401) return;
        showError(error);
        state.pollTimer = setTimeout(tick, POLL_MS * 2);
      }
    };
    state.pollTimer = setTimeout(tick, POLL_MS);
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = 0;
  }

  // ---------------------------------------------------------------------------------------------
  // My vehicles
  async function screenVehicles() {
    state.reg = null;
    show("vehicles", "我的车辆");
    const list = $("#vehicle-list");
    list.replaceChildren(h("p", { class: "hint", text: "正在加载…" }));
    let doc;
    try {
      doc = await api("GET", "/v1/me/vehicles");
    } catch (error) {
      list.replaceChildren();
      showError(error);
      return;
    }
    if (!doc.vehicles.length) {
      list.replaceChildren(h("p", { class: "hint center", text: "暂无已办理登记的车辆。" }));
      return;
    }
    list.replaceChildren(
      ...doc.vehicles.map((v) => {
        // 过户: the seller's card is the buyer's now (no functions of theirs; not theirs to de-register).
        const gone = v.step === "transferred";
        const cards = gone ? (v.cards || []).map((c) => ({ ...c, state: "transferred", functions: [] })) : v.cards;
        const registered = v.step === "registered" && (v.cards || []).some((c) => c.state === "registered");
        return h(
          "div",
          { class: "card vehicle", "data-vin": v.vin_masked },
          vehicleBlock(v, cards),
          registeredFor(v),
          vehicleResult(v.result),
          deregistrationResult(v.deregistration),
          cardHistory(v.cards),
          // 委托登记: only the owner (the card's holder) may de-register, never the trustee.
          registered && !v.registered_for && !(v.deregistration && v.deregistration.step === "pending")
            ? h(
                "div",
                { class: "vehicle-actions" },
                h("button", {
                  type: "button",
                  class: "secondary deregister",
                  text: "注销实名",
                  onclick: () => screenVin("deregistration", v.vin_masked),
                }),
              )
            : null,
        );
      }),
    );
  }

  const RESULTS = {
    pending: "登记办理中，等待电信企业确认",
    registered: "实名登记成功",
    rejected: "实名登记未通过",
    deregistered: "已注销实名",
    transferred: "已过户给新车主，不再登记在您的名下",
  };
  const EVENTS = {
    imported: "车辆入库",
    registration_submitted: "提交实名登记",
    registration_accepted: "电信企业确认登记",
    registration_rejected: "电信企业未通过登记",
    deregistration_requested: "申请注销实名，等待电信企业确认",
    deregistered: "注销实名",
    emergency_only: "恢复为仅紧急呼叫",
    deregistration_confirmed: "电信企业确认注销",
    deregistration_refused: "电信企业未确认注销",
    transfer_opened: "经销商申请过户",
    transfer_requested: "申请过户",
    transferred: "过户完成",
    transfer_rejected: "过户未通过",
    spot_check: "电信企业抽查",
    facts_updated: "车辆信息更新",
    scrapped: "车辆报废",
    swapped_out: "更换零部件（旧卡）",
    swapped_in: "更换零部件（新卡）",
  };

  /** 委托登记: the trustee reads the car as registered for its owner; the owner, as registered by a trustee. */
  function registeredFor(v) {
    if (v.registered_for) {
      const text = "为 " + v.registered_for + " 登记（仅车主本人可注销实名）";
      return h("p", { class: "vehicle-for hint", text });
    }
    return v.delegated ? h("p", { class: "vehicle-for hint", text: "受托人为您办理的委托登记" }) : null;
  }

  /** The last registration's result, with the operator's reason when it was refused. */
  function vehicleResult(result) {
    if (!result) return null;
    const text = RESULTS[result.step] || result.step;
    return h(
      "p",
      { class: "vehicle-result " + result.step },
      text +
        (result.step === "rejected" && result.reason_zh ? "：" + result.reason_zh : "") +
        (result.next === "checking_with_operator" ? "（平台正在向电信企业查询结果）" : ""),
    );
  }

  /** The owner's last de-registration of the vehicle, while the operator has it or when it refused. */
  function deregistrationResult(dereg) {
    if (!dereg || dereg.step === "deregistered") return null;
    const text =
      dereg.step === "pending"
        ? "注销办理中，等待电信企业确认"
        : "实名注销未通过" + (dereg.reason_zh ? "：" + dereg.reason_zh : "") + "，实名登记仍然有效";
    return h("p", { class: "vehicle-result deregistration " + dereg.step }, text);
  }

  /** Each card's history, newest first, folded away until asked for. */
  function cardHistory(cards) {
    const rows = [];
    for (const card of cards || []) {
      for (const e of (card.history || []).slice().reverse()) {
        const when = new Date(e.at).toLocaleString("zh-CN", { hour12: false });
        const what = EVENTS[e.event] || CARD_STATES[e.to_state] || e.event;
        rows.push(h("li", {}, h("time", { text: when }), " ", what));
      }
    }
    if (!rows.length) return null;
    return h("details", { class: "history" }, h("summary", { text: "办理记录" }), h("ol", {}, ...rows));
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring
  function wire() {
    $("#login-form").addEventListener("submit", login);
    $("#login-send").addEventListener("click", () => sendCode($("#login-phone"), $("#login-send"), "login"));
    watchSendButton($("#login-phone"), $("#login-send"));
    watchSendButton($("#owner-phone"), $("#owner-send"));
    $("#go-home").addEventListener("click", home);
    $("#sign-out").addEventListener("click", () => {
      forget();
      signOut("已退出登录");
    });
    $("#home-register").addEventListener("click", () => screenVin("registration"));
    $("#home-deregister").addEventListener("click", screenVehicles);
    $("#home-vehicles").addEventListener("click", screenVehicles);
    $("#home-continue").addEventListener("click", resumeOrHome);
    $("#vin-form").addEventListener("submit", startByVin);
    $("#vehicle-confirm").addEventListener("click", () =>
      step($("#vehicle-confirm"), "确认中…", async () => {
        const path =
          KINDS[state.kind].path + "/" + encodeURIComponent(state.reg.registration_id) + "/confirm-vehicle";
        await render(await api("POST", path, {}));
      }),
    );
    $("#vehicle-other").addEventListener("click", () => {
      forget();
      screenVin(state.kind);
    });
    $("#owner-send").addEventListener("click", () =>
      sendCode($("#owner-phone"), $("#owner-send"), KINDS[state.kind].smsPurpose),
    );
    $("#phone-form").addEventListener("submit", verifyPhone);
    $("#identity-form").addEventListener("submit", saveIdentity);
    // Documents OCR does not read (every type but the resident ID card) go to a reviewer: say so.
    $("#id-type").addEventListener("change", () => {
      const resident = $("#id-type").value === "resident_id";
      $("#id-type-review").hidden = resident;
      $("#id-number").placeholder = resident ? "18 位身份证号码" : "与证件一致";
    });
    $("#delegation-form").addEventListener("submit", saveDelegation);
    $("#delegation-confirm").addEventListener("submit", confirmDelegation);
    $("#delegation-send").addEventListener("click", sendDelegationCode);
    $("#delegation-edit").addEventListener("click", () => delegationPart(false));
    $("#possession-form").addEventListener("submit", proveByHeadUnit);
    $("#head-unit-send").addEventListener("click", sendHeadUnitCode);
    $("#possession-contest").addEventListener("click", contestPossession);
    $("#possession-transfer").addEventListener("click", transferPossession);
    setInterval(syncHeadUnitSend, 1000);
    for (const how of ["camera", "album"]) {
      const input = $("#licence-" + how);
      input.addEventListener("change", () => onLicenceChosen(input));
    }
    setInterval(syncDelegationSend, 1000);
    for (const [kind, prefix] of [
      ["authorization_letter", "letter"],
      ["owner_id_front", "ownerid"],
      ["owner_id_back", "owneridback"],
    ]) {
      for (const how of ["camera", "album"]) {
        const input = $("#" + prefix + "-" + how);
        input.addEventListener("change", () => onDelegationDoc(kind, input));
      }
    }
    for (const kind of ["id_front", "id_back"]) {
      for (const how of ["camera", "album"]) {
        const input = $("#doc-" + kind + "-" + how);
        input.addEventListener("change", () => onDocumentChosen(kind, input));
      }
    }
    $("#documents-next").addEventListener("click", () =>
      step($("#documents-next"), "请稍候…", async () => {
        await refresh();
      }),
    );
    $("#documents-edit").addEventListener("click", screenIdentity);
    $("#docs-consent-check").addEventListener("change", () => {
      $("#docs-consent-submit").disabled = !$("#docs-consent-check").checked;
    });
    $("#docs-consent-submit").addEventListener("click", giveDocsConsent);
    $("#face-camera").addEventListener("click", captureWithCamera);
    $("#face-files").addEventListener("change", () => onFramesChosen($("#face-files")));
    $("#face-retry").addEventListener("click", () => {
      $("#face-result").hidden = true;
      faceButtons("none");
      newSession(state.reg);
    });
    $("#face-review").addEventListener("click", requestReview);
    $("#face-consent-check").addEventListener("change", () => {
      $("#face-consent-submit").disabled = !$("#face-consent-check").checked;
    });
    $("#face-consent-submit").addEventListener("click", giveFaceConsent);
    $("#review-refresh").addEventListener("click", () =>
      step($("#review-refresh"), "刷新中…", async () => {
        await refresh();
      }),
    );
    $("#consents-submit").addEventListener("click", giveConsents);
    $("#submit-button").addEventListener("click", submit);
    $("#result-vehicles").addEventListener("click", screenVehicles);
    $("#result-home").addEventListener("click", home);
    $("#vehicles-register").addEventListener("click", () => screenVin("registration"));
  }

  wire();
  if (sessionStorage.getItem(STORE.token)) resumeOrHome();
  else show("login", "手机号登录");
})();
