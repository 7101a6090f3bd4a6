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
  // The sign-in: the access token (short-lived) stays in this tab (sessionStorage); the refresh token
  // and the masked phone stay in localStorage, so the sign-in survives closing the app. The trade-off:
  // a script running in this origin could read the refresh token. The page loads no other script and
  // puts all text in as text, never markup; the server keeps only a keyed hash of the token, rotates it
  // on every use and ends the whole session when a retired one comes back, and 退出 ends it there too.
  const STORE = {
    refresh: "cheka.h5.refresh", // localStorage
    token: "cheka.h5.token",
    subject: "cheka.h5.subject",
    phone: "cheka.h5.phone",
    current: "cheka.h5.current",
    loginPhone: "cheka.h5.login_phone", // offered on the phone step (the person may type another)
    homeSaid: "cheka.h5.home_said", // what home's status region last said, and to whom
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
        ["identity", "拍摄证件"],
        ["documents", "核对信息"],
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
        // The identity is the registered holder's: only its photos and the face prove it again.
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
    "face.duplicate": "该人脸已用于登记其他身份，请本人办理或联系客服",
    "authority.portrait_mismatch": "人脸与公安系统登记的照片不一致",
    "authority.unavailable": "身份核验服务暂时无法回应，请稍后再试",
    "authority.not_found": "未能核实该身份信息，请核对证件后重试",
    "authority.not_passed": "身份信息核验未通过，请核对证件信息",
  };
  const SMS_WAIT = 60; // seconds between two codes to one phone (SPEC §3)
  const POLL_MS = 2000;
  const PHOTO_NAMES = {
    id_front: "身份证人像面",
    id_back: "身份证国徽面",
    vehicle_licence: "行驶证照片",
    authorization_letter: "授权委托书",
    owner_id_front: "车主身份证人像面",
    owner_id_back: "车主身份证国徽面",
  };
  const MAX_FRAME_BYTES = 1024 * 1024;
  // 经销商平板 (第二十条): a dealer opens the client at #handoff=<code> on its tablet; the owner signs in
  // with their own phone and registers the car the dealer handed over. At the end (结束, or 5 minutes
  // untouched) the owner is signed out and the page keeps nothing: storage, caches, the page itself.
  const TABLET = { flag: "cheka.h5.tablet", code: "cheka.h5.handoff", idleMs: 5 * 60 * 1000 };

  const state = {
    kind: "registration",
    reg: null, // the current registration or de-registration (the server's view)
    session: null, // the current liveness session
    docsDone: {}, // kind → true once its photo is stored and read
    consents: null,
    pollTimer: 0,
    pollStarted: 0,
    deregHint: "",
    vinTail: null, // the VIN tail the VIN screen asks for (待补登记 without its VIN), else null
  };

  // ---------------------------------------------------------------------------------------------
  // The shared web/common files (api.js, ui.js, photos.js): DOM helpers (text always goes in as text,
  // never as markup), the API's error model, field errors, notices, masked display, photo uploads.
  const web = window.ChekaWeb;
  const { $, $$, h, ApiError, asError, maskPhone, chinaTime } = web;

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

  /** Keep what a login or a refresh answered: the access token in this tab, the refresh token for good. */
  function keepSession(session) {
    sessionStorage.setItem(STORE.token, session.token);
    sessionStorage.setItem(STORE.subject, session.subject || "");
    localStorage.setItem(STORE.refresh, session.refresh_token);
  }

  function signedIn() {
    return Boolean(sessionStorage.getItem(STORE.token) || localStorage.getItem(STORE.refresh));
  }

  let refreshing = null; // the one refresh in flight in this tab

  /** Trade the refresh token for a new pair: {ok: true}, or {ok: false, message} once the session ended. */
  function refreshSession() {
    if (refreshing) return refreshing;
    refreshing = renew(true).finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  async function renew(again) {
    const token = localStorage.getItem(STORE.refresh);
    if (!token) return { ok: false, message: "登录已过期，请重新登录" };
    let response;
    try {
      response = await fetch(ROOT + "/v1/auth/refresh", {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch (_) {
      throw new ApiError(0, { code: "network", message_zh: "网络连接失败，请检查网络后重试" });
    }
    const doc = await response.json().catch(() => ({}));
    if (response.ok) {
      keepSession(doc);
      return { ok: true };
    }
    // Another tab of the app refreshed meanwhile: trade its new token for this tab's access token.
    if (again && localStorage.getItem(STORE.refresh) !== token) return renew(false);
    if (response.status === 401) return { ok: false, message: doc.message_zh || "登录已过期，请重新登录" };
    throw new ApiError(response.status, doc && doc.code ? doc : {});
  }

  const SIGN_IN_PATHS = ["/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout"];

  /** ``more``: headers of this call only (a captcha answer on a route without a body). */
  async function api(method, path, body, retried, more) {
    const signingIn = SIGN_IN_PATHS.includes(path);
    if (!signingIn && !sessionStorage.getItem(STORE.token) && localStorage.getItem(STORE.refresh)) {
      // A new tab, or the app opened again: the sign-in is the refresh token's.
      const renewed = await refreshSession();
      if (!renewed.ok) {
        signOut(renewed.message);
        throw new ApiError(401, { code: "auth.session_ended", message_zh: renewed.message });
      }
    }
    const headers = Object.assign({ Accept: "application/json" }, more || {});
    const device = web.deviceId(); // the server counts asks for SMS codes per device with it
    if (device) headers["X-Device-Id"] = device;
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
      if (response.status === 401 && token && !signingIn) {
        // The access token expired (or was refused): renew it once, quietly, and ask again.
        const renewed = retried ? { ok: false, message: error.messageZh } : await refreshSession();
        if (renewed.ok) return api(method, path, body, true, more);
        signOut(renewed.message || "登录已过期，请重新登录");
      }
      throw error;
    }
    return doc;
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
    const inside = signedIn();
    $("#go-home").hidden = !inside || name === "home" || name === "login";
    $("#sign-out").hidden = !inside;
    showProgress(name);
    record(name, title);
    window.scrollTo(0, 0);
  }

  // Browser history: an entry per screen (#/home, #/vehicles, #/registration/<id>/face…), so the back
  // gesture goes one screen back and stays in the app. A registration's steps replace one another as
  // the server moves on: a step it has closed is no place to go back to, so back from a step leaves the
  // registration for the screen it was opened from (home, 我的车辆), where 继续办理 leads back to the
  // step due. A screen opened within a step (editing what was typed) is an entry of its own. Back on
  // home stays on home; only the login screen lets the back gesture leave the app.
  const FLOW_SCREENS = [
    "confirm_vehicle", "verify_phone", "possession", "delegation", "identity", "documents", "face",
    "review", "consents", "submit", "result",
  ];
  let restoring = false; // showing an entry the back gesture (or a reload) reached: no new entry

  function entryFor(name, title) {
    const reg = FLOW_SCREENS.includes(name) && state.reg && state.reg.registration_id ? state.reg : null;
    return {
      cheka: 1,
      screen: name,
      title: title || "",
      kind: state.kind,
      id: reg ? reg.registration_id : null,
      step: reg ? reg.step : null,
    };
  }

  function routeOf(entry) {
    return entry.id ? "#/" + entry.kind + "/" + encodeURIComponent(entry.id) + "/" + entry.screen : "#/" + entry.screen;
  }

  function record(name, title) {
    const entry = entryFor(name, title);
    const here = history.state && history.state.cheka && !history.state.guard ? history.state : null;
    const again = here && here.screen === name && here.id === entry.id;
    // The server moved the registration on (or it was just started from the VIN typed).
    const moved = here && entry.id && (here.id === entry.id ? here.step !== entry.step : here.screen === "vin");
    if (restoring || again || moved) history.replaceState(entry, "", routeOf(entry));
    else history.pushState(entry, "", routeOf(entry));
  }

  /** The entry a link names (#/registration/<id>/result, #/vehicles): a reload without its state. */
  function entryOfHash(hash) {
    const parts = (hash || "").replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    if (parts.length === 3 && KINDS[parts[0]]) return { cheka: 1, kind: parts[0], id: parts[1], screen: parts[2] };
    if (parts.length === 1) return { cheka: 1, screen: parts[0], title: "" };
    return null;
  }

  /** Screens shown again from their entry; any other static screen is shown as it is. */
  const REOPEN = {
    home: () => home(),
    login: () => home(),
    vehicles: () => screenVehicles(),
    // the car picked for 注销 (kept while the page lives; after a reload: 我的车辆 to pick it again)
    deregister_vehicle: () => (state.deregPick ? screenDeregisterVehicle(state.deregPick) : screenVehicles()),
    vin: (entry) => screenVin(entry.kind || state.kind || "registration"),
  };

  async function showEntry(entry) {
    if (entry.id && KINDS[entry.kind]) return openRegistration(entry.kind, entry.id);
    const again = REOPEN[entry.screen];
    if (again) return again(entry);
    if (section(entry.screen) && !FLOW_SCREENS.includes(entry.screen)) return show(entry.screen, entry.title);
    return home();
  }

  async function onBack(entry) {
    if (/^#handoff=/.test(location.hash)) return; // a dealer's hand-off link: the page loads afresh
    if (!signedIn()) {
      if (!entry || entry.guard) history.back(); // back from the login screen leaves the app
      else {
        restoring = true;
        show("login", "手机号登录");
        restoring = false;
      }
      return;
    }
    if (!entry || !entry.cheka || entry.guard) {
      home(); // back on home stays in the app (a new entry over the first one)
      return;
    }
    restoring = true;
    try {
      await showEntry(entry);
    } finally {
      restoring = false;
    }
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

  const notice = web.notice;

  // Field errors, busy buttons: the shared web/common/ui.js (the portal and the console use the same),
  // scoped to the screen shown.
  const clearErrors = web.clearErrors;

  /** Show a refusal where it belongs: under its field when the server names one, else on the screen. */
  function showError(error, root) {
    web.showError(error, root || section(currentScreen()));
  }

  /** Run `work` with the button disabled and saying what is happening; errors go to the screen. */
  function busy(button, label, work) {
    return web.busy(button, label, () => section(currentScreen()), work);
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
      // After a few asks from this device the server wants a captcha first: shown, then asked again.
      const sent = await web.withCaptcha((extra) =>
        api("POST", "/v1/auth/sms-codes", Object.assign({ phone, purpose }, extra)),
      );
      nextSend.set(phone, Date.now() + ((sent && sent.resend_after) || SMS_WAIT) * 1000);
      notice("验证码已发送至 " + maskPhone(phone) + "，5 分钟内有效");
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
    const masked = maskPhone(phone);
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
    for (const key of [STORE.token, STORE.subject, STORE.phone, STORE.loginPhone, STORE.homeSaid]) {
      sessionStorage.removeItem(key);
    }
    for (const key of [STORE.refresh, STORE.phone]) localStorage.removeItem(key);
    homeAsked += 1; // an answer still on its way is not shown to whoever signs in next
    hideResume();
    hideBackfillReminder();
    $("#home-status").textContent = "";
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
    const accepted = await agreedTexts();
    if (!accepted) return;
    await busy($("#login-submit"), "登录中…", async () => {
      const session = await api("POST", "/v1/auth/login", { phone, code, accepted });
      keepSession(session);
      localStorage.setItem(STORE.phone, maskPhone(phone));
      sessionStorage.setItem(STORE.loginPhone, phone);
      notice("");
      await resumeOrHome();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The dealer's tablet
  function inTablet() {
    return sessionStorage.getItem(TABLET.flag) === "1";
  }

  /** Opened by a dealer's hand-off link: keep its code until used, drop it from the address. */
  function takeHandoff() {
    const found = /^#handoff=([A-Za-z0-9_-]{32,64})$/.exec(location.hash || "");
    if (!found) return false;
    localStorage.clear(); // whatever an earlier person left on this device goes first
    sessionStorage.clear();
    sessionStorage.setItem(TABLET.flag, "1");
    sessionStorage.setItem(TABLET.code, found[1]);
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }

  let idleTimer = 0;

  function tabletMode() {
    const on = inTablet();
    document.body.classList.toggle("tablet", on);
    $("#tablet-note").hidden = !on;
    $("#tablet-end").hidden = !on;
    $("#result-vehicles").hidden = on;
    $("#result-home").hidden = on;
    if (!on) return;
    $("#sign-out").textContent = "结束";
    const poke = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => endTablet(true), TABLET.idleMs);
    };
    for (const type of ["pointerdown", "keydown", "input"]) document.addEventListener(type, poke, true);
    poke();
  }

  /** After the owner signed in: the registration the dealer handed over, at the step due. */
  async function openHandoff() {
    const code = sessionStorage.getItem(TABLET.code);
    if (!code) return false;
    sessionStorage.removeItem(TABLET.code); // single use, whatever the answer
    state.kind = "registration";
    try {
      await render(await api("POST", "/v1/dealer/handoffs/redeem", { code }));
    } catch (error) {
      home();
      notice(asError(error).messageZh);
    }
    return true;
  }

  /** 结束 (or untouched too long): the owner is signed out on the server, and this page forgets all of
   * it (storage, caches, the screens it showed: it loads again on the hand-back screen). */
  async function endTablet(idle) {
    clearTimeout(idleTimer);
    stopPolling();
    stopCamera();
    const token = localStorage.getItem(STORE.refresh);
    if (token) {
      try {
        await fetch(ROOT + "/v1/auth/logout", {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
        });
      } catch (_) {
        // Offline: the session ends when unused (its idle limit); nothing of it stays here.
      }
    }
    sessionStorage.clear();
    localStorage.clear();
    try {
      if (window.caches) for (const key of await caches.keys()) await caches.delete(key);
    } catch (_) {
      // No cache storage on this page (not a secure context): nothing was kept there.
    }
    // A new load (not a move within the page, which the back handling would take for a back gesture).
    location.replace(location.pathname + "?handback=" + (idle ? "idle" : "done"));
  }

  function handBack(idle) {
    history.replaceState({ cheka: 1, guard: true }, "", location.pathname);
    show("handback", "交还设备");
    if (idle) $("#handback-text").textContent = "长时间未操作，已自动结束";
  }

  /** 退出: the server ends the session (its refresh token is refused from now on), then this app. */
  async function logout() {
    const token = localStorage.getItem(STORE.refresh);
    if (token) {
      try {
        await fetch(ROOT + "/v1/auth/logout", {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
        });
      } catch (_) {
        // Offline: the session ends here; the server's ends when unused (its idle limit).
      }
    }
    signOut("已退出登录");
  }

  // ---------------------------------------------------------------------------------------------
  // Home, resume
  function remember(reg) {
    sessionStorage.setItem(STORE.current, JSON.stringify({ kind: state.kind, id: reg.registration_id }));
  }

  function forget() {
    sessionStorage.removeItem(STORE.current);
  }

  function home() {
    state.reg = null;
    notice("");
    show("home", "个人用户业务");
    const who = localStorage.getItem(STORE.phone);
    $("#home-who").textContent = who ? "当前登录：" + who : "";
    showBelowTiles();
  }

  let homeAsked = 0;

  /** How long home waits for its two questions before painting what has answered (the one still on its
   * way is painted by itself when it comes): on a bad network one question held or lost hides nothing. */
  const HOME_WAIT_MS = 2500;

  /** 待补登记 and 继续办理, the boxes of home below its tiles. Both answers come after home is painted, so
   * both boxes sit below every tile and each has its mark drawn over a tile's corner (the tile keeps its
   * size): whatever they show, no tile moves under a finger already on its way to it. The two questions
   * are asked at once and the boxes painted together when both are answered, or when HOME_WAIT_MS has
   * passed (on the first visit neither moves the other); an answer later than that paints its own box
   * when it comes, which moves no tile either. 继续办理 is the last box: back on home from a step, it is
   * the one that appears, and it moves nothing. A question that fails hides its box and mark (never the
   * previous visit's left standing); a painter that throws spoils only its own box. */
  async function showBelowTiles() {
    const asked = ++homeAsked;
    const current = () => asked === homeAsked && currentScreen() === "home";
    // In the order of the boxes on the screen: 待补登记, then 继续办理.
    const boxes = [
      { answer: api("GET", "/v1/me/backfill"), paint: showBackfillReminder, hide: hideBackfillReminder },
      {
        answer: api("GET", "/v1/me/registrations?open=true").then((doc) => doc.registrations || []),
        paint: showResume,
        hide: hideResume,
      },
    ];
    const outcomes = boxes.map(() => null);
    boxes.forEach((box, i) =>
      box.answer.then(
        (value) => (outcomes[i] = { value }),
        () => (outcomes[i] = { failed: true }),
      ),
    );
    let timer = 0;
    const waited = new Promise((resolve) => (timer = setTimeout(resolve, HOME_WAIT_MS)));
    await Promise.race([Promise.allSettled(boxes.map((box) => box.answer)), waited]);
    clearTimeout(timer);
    if (!current()) return;
    const paint = (i) => {
      const box = boxes[i];
      try {
        if (outcomes[i].failed) box.hide();
        else box.paint(outcomes[i].value);
      } catch (error) {
        console.error(error);
        box.hide();
      }
    };
    const late = [];
    boxes.forEach((box, i) => {
      if (outcomes[i]) paint(i);
      else late.push(i);
    });
    announceHome();
    for (const i of late) {
      const paintLate = () => {
        if (!current()) return;
        paint(i);
        announceHome();
      };
      boxes[i].answer.then(paintLate, paintLate);
    }
  }

  /** What home's two boxes say, spoken once by its status region: the boxes are not live regions (each
   * visit to home would read them again); the region speaks only when what they say differs from what
   * it last said to the person signed in (kept in the tab's session, so a reload does not repeat it). */
  function announceHome() {
    const parts = [];
    if (!$("#home-backfill").hidden) {
      parts.push("待补登记：" + $("#home-backfill-what").textContent + "，" + $("#home-backfill-when").textContent);
    }
    if (!$("#home-resume").hidden) parts.push($("#home-resume-title").textContent + "，见继续办理");
    const said = parts.join("。");
    const who = sessionStorage.getItem(STORE.subject) || "";
    let last = null;
    try {
      last = JSON.parse(sessionStorage.getItem(STORE.homeSaid) || "null");
    } catch (_) {
      last = null;
    }
    if (last && last.who === who && last.said === said) return;
    sessionStorage.setItem(STORE.homeSaid, JSON.stringify({ who, said }));
    $("#home-status").textContent = said;
  }

  /** 待补登记 on the home screen: how many of the person's cars in use are not registered, and by when;
   * 去登记 opens 我的车辆, where each has its 立即登记; 我的车辆 carries the mark. */
  function showBackfillReminder(doc) {
    const box = $("#home-backfill");
    // Shown as it was until the answer comes (nothing appears, then disappears, on each visit).
    const cards = doc.cards || [];
    if (!cards.length) return hideBackfillReminder();
    // A car may have several cards: the person is told of cars (told apart by their masked VIN).
    const cars = new Set(cards.map((c) => c.vin_masked)).size;
    const deadline = cards[0].deadline;
    $("#home-backfill-what").textContent =
      cars > 1
        ? "您有 " + cars + " 辆车的车联网卡未实名登记"
        : "车辆识别代号尾号 " + cards[0].vin_masked.slice(-6) + " 的车联网卡未实名登记";
    $("#home-backfill-when").textContent = deadline ? "请于 " + dateZh(deadline) + " 前完成" : "请尽快完成";
    box.hidden = false;
    $("#home-vehicles-mark").hidden = false;
  }

  /** 待补登记 off home (nothing to remind of, or its question failed: what it said may be stale). */
  function hideBackfillReminder() {
    $("#home-backfill").hidden = true;
    $("#home-vehicles-mark").hidden = true;
  }

  /** What a step due is called on the 继续办理 card. */
  const RESUME_STEPS = {
    confirm_vehicle: "确认车辆信息",
    verify_phone: "验证手机号",
    possession: "证明车辆持有",
    delegation: "填写委托信息",
    identity: "拍摄身份证",
    documents: "核对证件信息",
    face: "人脸检测",
    consents: "阅读并同意协议",
    submit: "提交办理",
  };

  function stepWords(open) {
    if (open.step === "review") return "人工审核中，点击查看进度";
    const named = RESUME_STEPS[open.step];
    return named ? "下一步：" + named : "点击查看进度";
  }

  /** 继续办理: the unfinished registrations and de-registrations the server knows of (any device), each
   * a button that opens it at its step due; the tile of each kind with one unfinished carries 未完成. */
  function showResume(open) {
    if (!open.length) return hideResume();
    const box = $("#home-resume");
    $("#home-resume-title").textContent =
      open.length > 1 ? "您有 " + open.length + " 项未完成的办理" : "您有一项未完成的办理";
    $("#home-resume-list").replaceChildren(
      ...open.map((r) =>
        h(
          "button",
          {
            type: "button",
            class: "resume-item",
            "data-registration": r.registration_id,
            "data-kind": r.kind,
            onclick: () => openRegistration(r.kind, r.registration_id),
          },
          h(
            "span",
            {},
            // The tail of the car's VIN (a bare 尾号 would read as the plate's), short enough for one line.
            h("strong", { text: (KINDS[r.kind] ? KINDS[r.kind].name : "") + " · VIN 尾号 " + r.vin_masked.slice(-6) }),
            h("span", { text: stepWords(r) }),
          ),
          h("em", { text: "继续办理" }),
        ),
      ),
    );
    box.hidden = false;
    $("#home-register-mark").hidden = !open.some((r) => r.kind === "registration");
    $("#home-deregister-mark").hidden = !open.some((r) => r.kind === "deregistration");
  }

  /** 继续办理 off home, with the 未完成 marks (nothing unfinished, or its question failed). */
  function hideResume() {
    $("#home-resume").hidden = true;
    $("#home-resume-list").replaceChildren();
    $("#home-register-mark").hidden = true;
    $("#home-deregister-mark").hidden = true;
  }

  /** 未完成 on a tile, tapped: the tile itself starts a new one, so the mark leads to 继续办理 (on a small
   * screen below the fold), scrolled into view with the focus on the unfinished one of the tile's kind. */
  function goToResume(kind) {
    const items = Array.from($("#home-resume-list").querySelectorAll(".resume-item"));
    const item = items.find((b) => b.dataset.kind === kind) || items[0];
    if (!item) return;
    const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    item.focus({ preventScroll: true });
    item.scrollIntoView({ block: "center", behavior: still ? "auto" : "smooth" });
  }

  /** One registration or de-registration, at the screen of the step the server says is due. */
  async function openRegistration(kind, id) {
    state.kind = kind;
    try {
      await render(await api("GET", KINDS[kind].path + "/" + encodeURIComponent(id)));
    } catch (error) {
      const err = asError(error);
      if (err.status === 401) return;
      home();
      if (err.status === 404 || err.status === 403) notice("这项办理已过期或不存在，请重新开始");
      else showError(err);
    }
  }

  let afterLogin = null; // the screen a link named before the person signed in

  async function resumeOrHome() {
    if (await openHandoff()) return;
    const entry = afterLogin;
    afterLogin = null;
    if (entry) await showEntry(entry);
    else home();
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
        // OCR first: the ID card is photographed and read, then its fields are confirmed; documents
        // OCR does not read (passports, permits) are typed (「使用其他证件」).
        return state.otherId ? screenIdentity() : screenDocuments(reg);
      case "documents":
        return screenDocuments(reg);
      case "face":
        return screenFace(reg);
      case "review":
        return screenReview(reg);
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
  /** The VIN screen of a new registration or deregistration; `hint` (a masked VIN) names the tail of
   * the car meant (待补登记 without its VIN, or the car picked for 注销). */
  function screenVin(kind, hint) {
    state.kind = kind;
    state.reg = null;
    state.otherId = false; // a new registration reads the ID card first again
    show("vin", kind === "registration" ? "车主实名登记" : "车主注销实名");
    $("#vin-title").textContent = kind === "registration" ? "输入车辆识别代号" : "输入要注销的车辆识别代号";
    const where = "可在行驶证、车辆合格证或前挡风玻璃左下角查看。";
    $("#vin-hint").textContent =
      kind !== "registration"
        ? "请输入要注销实名的车辆的完整识别代号（VIN）" + (hint ? "，尾号 " + hint.slice(-6) : "") + "。"
        : hint
          ? "请输入尾号为 " + hint.slice(-6) + " 的车辆识别代号（VIN，共 17 位），" + where
          : "车辆识别代号（VIN）共 17 位，" + where;
    // The tail of the car the notice named (待补登记 without its VIN): a VIN typed with another is
    // refused on the screen, before anything is posted.
    state.vinTail = kind === "registration" && hint ? hint.slice(-6).toUpperCase() : null;
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
    if (state.kind === "registration" && state.vinTail && vin.slice(-6) !== state.vinTail) {
      showError(
        new ApiError(422, {
          code: "client.vin_tail",
          message_zh: "车辆识别代号尾号与待登记车辆（尾号 " + state.vinTail + "）不符，请核对后重新输入",
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
          card.holder_masked ? h("div", { class: "sim-holder", text: "登记人 " + card.holder_masked }) : null,
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
    // The phone the person logged in with is offered: one tap on 获取验证码; another can be typed.
    const mine = sessionStorage.getItem(STORE.loginPhone) || "";
    const input = $("#owner-phone");
    if (mine && !input.value.trim()) input.value = mine;
    const offered = Boolean(mine) && input.value.trim() === mine;
    const masked = maskPhone(mine);
    $("#phone-hint").textContent =
      state.kind === "registration"
        ? offered
          ? "已填入您登录的手机号 " + masked + "。如车主或使用人是他人，请改为其本人的手机号码。"
          : "请填写车主或使用人本人的手机号码，并输入收到的短信验证码。"
        : offered
          ? "已填入您登录的手机号 " + masked + "。如登记时使用的是其他号码，请改为该号码。"
          : "请填写登记时使用的手机号码，并输入收到的短信验证码。";
    syncSendButton(input, $("#owner-send"));
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
      $(".doc-status", box).textContent = err.messageZh; // it says whether to retake, once
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
    // Typed only for documents OCR does not read, or where the person chose to type (其他证件).
    $("#identity-scan").hidden = !(state.reg && state.reg.step === "identity");
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
      const sent = await web.withCaptcha((extra) =>
        api("POST", path, {}, false, web.captchaHeaders(extra)),
      );
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
      $(".doc-status", box).textContent = err.messageZh; // it says what to do (retake or not), once
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
  /** Whether the ID card is read first and its fields confirmed (识别后确认): a registration's own
   * resident ID card. A de-registration's identity is the registered one, and a typed passport or
   * permit goes as typed: their photos are checked at once against that identity. */
  function readsFirst(reg, flow) {
    if (state.kind !== "registration") return false;
    if (reg.step === "identity") return true;
    const identity = flow && flow.identity;
    return !identity || identity.id_type === "resident_id";
  }

  async function screenDocuments(reg) {
    show("documents", state.kind === "registration" && reg.step === "identity" ? "拍摄身份证" : "上传证件照片");
    showProgress(reg.step);
    delete section("documents").dataset.ready;
    state.docsDone = {};
    state.readings = {};
    for (const kind of ["id_front", "id_back"]) docState(kind, "empty", null);
    $("#docs-consent").hidden = true;
    $("#docs-photos").hidden = false;
    $("#confirm-form").hidden = true;
    state.readFirst = readsFirst(reg, null);
    documentsMode(reg);
    let flow = null;
    try {
      flow = await api("GET", "/v1/flows/" + encodeURIComponent(reg.flow_id));
      state.readFirst = readsFirst(reg, flow);
      const stored = flow.documents || [];
      for (const kind of ["id_front", "id_back"]) {
        if (state.readFirst && stored.includes(kind)) {
          // Back on this step: the photos taken are read again to fill the form to confirm.
          try {
            await readForConfirmation(kind);
          } catch (error) {
            docState(kind, "failed", asError(error).messageZh);
          }
        } else if (flow.checks && flow.checks["ocr_" + kind] === "passed") {
          state.docsDone[kind] = true;
          docState(kind, "done", "已上传并识别");
        }
      }
      // The ID front's portrait is face processing: the biometric consent comes first, on its own.
      if (!(flow.checks && flow.checks.biometric_consent === "passed")) await showDocsConsent();
    } catch (_) {
      // Not knowing what was done before only means asking for both photos again.
    }
    documentsMode(reg);
    updateDocumentsNext();
    section("documents").dataset.ready = "1";
  }

  /** The documents screen's hint and buttons for reading first (识别后确认) or checking at once. */
  function documentsMode(reg) {
    const registering = state.kind === "registration";
    $("#documents-next").hidden = state.readFirst;
    $("#documents-edit").hidden = state.readFirst || !registering;
    $("#documents-other-id").hidden = !(state.readFirst && reg.step === "identity");
    const whose = reg.delegated ? "您（受托人）本人的" : "";
    $('section[data-screen="documents"] > .hint').textContent = state.readFirst
      ? "请拍摄" + whose + "身份证人像面和国徽面，系统自动识别证件信息后，请您核对确认。请拍摄原件，四角完整、字迹清晰、无反光。"
      : registering
        ? "请拍摄" + whose + "身份证原件，四角完整、字迹清晰、无反光。支持 JPG、JPEG、PNG、BMP 格式。"
        : "请拍摄登记时所用证件的原件，将与登记的实名信息核对。四角完整、字迹清晰、无反光。";
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
    const both = Boolean(state.docsDone.id_front && state.docsDone.id_back);
    $("#documents-next").disabled = !both;
    if (state.readFirst) {
      const form = $("#confirm-form");
      const wasHidden = form.hidden;
      form.hidden = !both;
      if (both && wasHidden && section("documents").dataset.ready) form.scrollIntoView({ block: "start" });
    }
  }

  /** 识别后确认: the stored photo of ``kind`` read; its fields fill the form the person confirms. */
  async function readForConfirmation(kind) {
    docState(kind, "busy", "正在识别证件…");
    const path = "/v1/flows/" + encodeURIComponent(state.reg.flow_id) + "/readings/" + kind;
    const read = await api("POST", path);
    const reading = (read && read.reading) || {};
    state.readings[kind] = reading;
    if (kind === "id_front") {
      $("#confirm-name").value = reading.name || "";
      $("#confirm-id-number").value = reading.id_number || "";
      $("#confirm-address").value = reading.address || "";
    } else {
      $("#confirm-validity").textContent = reading.permanent
        ? (reading.valid_from || "") + " 至 长期"
        : reading.valid_until
          ? (reading.valid_from ? reading.valid_from + " 至 " : "至 ") + reading.valid_until
          : "未识别";
    }
    const missing = kind === "id_front" && !(reading.name && reading.id_number);
    state.docsDone[kind] = true;
    docState(kind, "done", missing ? "已识别，部分信息未能识别，请在下方补全" : "已识别，请在下方核对");
  }

  /** The confirmed identity: saved, then cross-checked with both photos by the server (证件核对). */
  async function confirmIdentity(event) {
    event.preventDefault();
    const form = $("#confirm-form");
    const body = {
      id_type: "resident_id",
      id_number: $("#confirm-id-number").value.replace(/\s+/g, "").toUpperCase(),
      name: $("#confirm-name").value.trim(),
      address: $("#confirm-address").value.trim(),
    };
    $("#confirm-id-number").value = body.id_number;
    clearErrors(form);
    const missing = [
      ["name", "请填写姓名"],
      ["id_number", "请填写公民身份号码"],
      ["address", "请填写住址"],
    ].filter(([key]) => !body[key]);
    if (missing.length) {
      const details = { errors: missing.map(([field, zh]) => ({ field, message_zh: zh })) };
      showError(new ApiError(422, { code: "client.required", message_zh: missing[0][1], details }), form);
      return;
    }
    const button = $("#confirm-submit");
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "核对中…";
    try {
      const flowPath = "/v1/flows/" + encodeURIComponent(state.reg.flow_id);
      await api("PUT", flowPath + "/identity", body);
      for (const kind of ["id_front", "id_back"]) await api("POST", flowPath + "/ocr/" + kind);
      await refresh();
    } catch (error) {
      if (!(await recover(error))) showError(error, form);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
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

  /** One photo of ``kind`` into the flow: scaled and compressed here to what the server needs, presigned,
   * sent to storage with a progress bar (cancel; resumed by itself after a dropped connection), then
   * checked by the server. ``status`` hears each stage. Every photo takes this path (the possession,
   * delegation and documents screens call it); a cancelled upload rejects with code ``upload.cancelled``,
   * a refusal with the server's error. */
  async function storePhoto(kind, file, status) {
    await web.storePhoto({ call: api }, state.reg.flow_id, kind, file, status, {
      view: uploadView(PHOTO_NAMES[kind] || "照片"),
      resume: true,
      waiting: () => notice("网络中断，恢复后将自动继续"),
    });
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
      if (state.readFirst) {
        await readForConfirmation(kind);
        updateDocumentsNext();
        return;
      }
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
      // The server's message says what to do (retake, the other side, a valid card): said once.
      let message = err.messageZh;
      if (err.code === "ocr.mismatch" && state.kind !== "registration") {
        message = "证件与登记的实名信息不一致，请使用登记时所用的证件";
      }
      docState(kind, "failed", message);
    }
    updateDocumentsNext();
  }

  // ---------------------------------------------------------------------------------------------
  // The upload panel (#upload): progress, cancel, the wait for the network. Compression, the presigned
  // upload, its resumption and the server's check are the shared web/common/photos.js.
  function uploadView(label) {
    return {
      start(bytes) {
        $("#upload-label").textContent = "正在上传" + label + "（" + Math.max(1, Math.round(bytes / 1024)) + " KB）";
        $("#upload-note").textContent = "";
        $("#upload").dataset.state = "sending";
        uploadProgress(0);
        $("#upload").hidden = false;
      },
      progress: uploadProgress,
      note(stateName, text) {
        $("#upload").dataset.state = stateName;
        $("#upload-note").textContent = text;
      },
      end() {
        $("#upload").hidden = true;
      },
    };
  }

  function uploadProgress(fraction) {
    const percent = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
    $("#upload-bar").value = percent;
    $("#upload-percent").textContent = percent + "%";
  }

  // ---------------------------------------------------------------------------------------------
  // Face: liveness challenge + match with the ID portrait (人脸检测 / 人证一致)
  //
  // The camera opens on a tap; the server guides the person into the oval from small preview frames
  // (where the face is, how large, how lit: the browser has no face model), the challenge starts by
  // itself once the face is in the oval, facing the screen and still, and the turn is judged as it
  // happens from the previews' pose: the burst goes up as soon as the turn is seen (or after
  // TURN_WAIT_MS, when the server decides). A burst in which the server saw no face or no turn is asked
  // again and spends no attempt; the server says so.
  let camera = null;
  let faceRun = 0; // a capture run's number: a stopped camera ends its loops
  const FRAME_MS = 450; // one frame of the burst every 0.45 s
  const TURN_WAIT_MS = 8000; // the turn not seen by then: the burst goes up, the server decides
  // The server asks for 12° from the start frame, measured on the full frames: the small previews read
  // the pose a few degrees apart from them (up to ~2.5° on a nod), so the client waits for more.
  const TURN_SEEN_DEGREES = { yaw: 14, pitch: 16 };
  const PREVIEW_SIDE = 320;
  const STEADY_PREVIEWS = 2; // previews in a row with the face in the oval, facing the screen, still
  const FRONTAL_DEGREES = 15;

  function stopCamera() {
    faceRun += 1;
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
    if (stage) {
      stage.classList.remove("live");
      delete stage.dataset.guide;
    }
    const guide = $("#face-guide");
    if (guide) guide.hidden = true;
    const target = section("face");
    if (target) target.dataset.phase = "";
  }

  function faceButtons(mode) {
    const canCamera = Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    $("#face-camera").hidden = mode !== "ready" || !canCamera;
    // Photos taken with the phone's camera app are only for devices without a camera the page can
    // open: the check wants one continuous capture, which the camera gives.
    $("#face-files-label").hidden = mode !== "ready" || canCamera;
    $("#face-retry").hidden = mode !== "retry";
    $("#face-review").hidden = mode !== "review" && mode !== "retry-review";
    if (mode === "retry-review") $("#face-retry").hidden = true;
  }

  function faceResult(ok, title, reasons) {
    const box = $("#face-result");
    box.className = "face-result " + (ok ? "ok" : "bad");
    const parts = [h("strong", { text: title })];
    if (reasons && reasons.length) {
      parts.push(h("ul", {}, reasons.map((r) => h("li", { text: FACE_REASONS[r] || "核验未通过" }))));
    }
    box.replaceChildren(...parts);
    box.hidden = false;
  }

  /** The live guidance on the oval: its text under the face, the ring's colour. */
  function faceGuide(text, kind) {
    const guide = $("#face-guide");
    guide.textContent = text;
    guide.hidden = !text;
    $(".face-stage").dataset.guide = kind || "";
    section("face").dataset.guide = kind || "";
  }

  function faceAttemptsLeft(left) {
    $("#face-attempts").textContent = left === undefined || left === null ? "" : "剩余 " + left + " 次核验机会";
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
      target.dataset.flow = reg.flow_id;
      target.dataset.bursts = "0";
      faceReady(session);
      faceAttemptsLeft(session.attempts_left);
    } catch (error) {
      const err = asError(error);
      if (await recover(err)) return;
      $("#face-instruction").textContent = "暂时无法进行人脸检测";
      showError(err);
      if (err.status === 429 || err.code === "face.attempts_exhausted") faceButtons("review");
      else faceButtons("retry");
    }
  }

  /** The challenge told ahead, and the way in: the camera, or (without one) a burst of photos. */
  function faceReady(session) {
    const direction = session.challenge.direction;
    const min = session.challenge.min_frames || 3;
    const max = session.challenge.max_frames || 8;
    const turn = DIRECTIONS[direction][0].replace("请", "");
    $("#face-instruction").textContent = DIRECTIONS[direction][0];
    $("#face-arrow").textContent = DIRECTIONS[direction][1];
    $("#face-camera").textContent = "开始人脸检测";
    $("#face-how").hidden = false;
    $("#face-how").textContent = "打开摄像头后，把脸放进圆框、正对屏幕，检测会自动开始。";
    $("#face-files-text").textContent =
      "无法打开摄像头时，请用手机相机连拍 " + min + "–" + max + " 张自拍：先正对镜头，再慢慢" + turn + "，然后一起选择上传。";
    faceButtons("ready");
  }

  async function captureWithCamera() {
    const session = state.session;
    if (!session) return;
    const button = $("#face-camera");
    button.disabled = true;
    clearErrors(section("face"));
    $("#face-result").hidden = true;
    try {
      camera = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
        audio: false,
      });
    } catch (_) {
      button.disabled = false;
      button.hidden = true;
      $("#face-files-label").hidden = false; // the camera cannot be used here: photos instead
      showError(
        new ApiError(0, {
          code: "client.camera",
          message_zh: "无法打开摄像头。请在浏览器设置中允许使用摄像头，或按下方说明连拍照片上传",
        }),
      );
      return;
    }
    const run = faceRun;
    const video = $("#face-video");
    video.srcObject = camera;
    video.hidden = false;
    $(".face-stage").classList.add("live");
    faceButtons("none");
    try {
      await video.play();
      await videoReady(video);
      await lineUp(video, run);
      const burst = await captureTurn(video, run);
      stopCamera();
      await sendFrames(burst.frames, burst.times);
    } catch (error) {
      if (run !== faceRun && !(error instanceof ApiError)) return; // the page moved on
      stopCamera();
      const err = asError(error);
      if (await recover(err)) return;
      if (!faceRefused(err)) {
        showError(err);
        faceAgain();
      }
    } finally {
      button.disabled = false;
    }
  }

  /** After a capture the server did not judge: the same challenge, the camera opened again. */
  function faceAgain() {
    if (!state.session) return;
    faceReady(state.session);
    $("#face-camera").textContent = "再试一次";
  }

  /** Resolves once the camera delivers pictures (a slow camera first shows nothing). */
  function videoReady(video, timeoutMs = 5000) {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      (function check() {
        if (video.readyState >= 2 && video.videoWidth > 0) return resolve();
        if (Date.now() - started > timeoutMs) {
          return reject(new ApiError(0, { code: "client.camera", message_zh: "摄像头没有画面，请点“再试一次”重新打开摄像头" }));
        }
        setTimeout(check, 50);
      })();
    });
  }

  function stillRunning(run) {
    if (run !== faceRun || !camera) throw new Error("camera stopped");
  }

  /** One small frame of the live video (base64 JPEG) judged by the server: face box, size, light, pose. */
  async function preview(frame) {
    const session = state.session;
    const path =
      "/v1/flows/" +
      encodeURIComponent(state.reg.flow_id) +
      "/liveness-sessions/" +
      encodeURIComponent(session.session_id) +
      "/preview";
    const seen = await api("POST", path, { frame });
    const target = section("face");
    target.dataset.previews = String(Number(target.dataset.previews || 0) + 1);
    return seen;
  }

  /** Until the face is in the oval, facing the screen and still: the server's guidance on the oval. */
  async function lineUp(video, run) {
    section("face").dataset.phase = "align";
    $("#face-instruction").textContent = "先对准圆框，正对屏幕";
    $("#face-arrow").textContent = "";
    $("#face-how").hidden = true;
    faceGuide("正在识别…", "wait");
    let steady = 0;
    let last = null;
    for (;;) {
      stillRunning(run);
      const seen = await preview(snapshot(video, PREVIEW_SIDE, 0.7));
      stillRunning(run);
      let text = seen.message_zh;
      let ok = seen.guidance === "ok";
      if (ok && Math.abs(seen.yaw) > FRONTAL_DEGREES) {
        ok = false;
        text = "请正对屏幕";
      }
      if (ok && last && moved(last, seen)) {
        ok = false;
        text = "请保持不动";
      }
      last = seen.guidance === "ok" ? seen : null;
      steady = ok ? steady + 1 : 0;
      faceGuide(text, ok ? "ok" : "warn");
      if (steady >= STEADY_PREVIEWS) return;
      await sleep(250);
    }
  }

  function moved(a, b) {
    const centre = (box) => [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
    const [ax, ay] = centre(a.box);
    const [bx, by] = centre(b.box);
    return Math.hypot(ax - bx, ay - by) > 0.06 || Math.abs(a.size - b.size) > 0.08;
  }

  /**
   * The challenge near the face; frames every FRAME_MS while the previews follow the turn. Resolves
   * with the burst (at most max_frames, ending where the turn was seen) once the turn is seen, or
   * after TURN_WAIT_MS with the last frames (the server then says whether it saw a turn).
   */
  async function captureTurn(video, run) {
    const session = state.session;
    const direction = session.challenge.direction;
    const [text, arrow] = DIRECTIONS[direction];
    const axis = direction === "left" || direction === "right" ? "yaw" : "pitch";
    const sign = direction === "right" || direction === "up" ? 1 : -1;
    const max = session.challenge.max_frames || 8;
    const min = session.challenge.min_frames || 3;
    section("face").dataset.phase = "turn";
    $("#face-instruction").textContent = text;
    $("#face-arrow").textContent = arrow;
    faceGuide("", "turn");
    const frames = [];
    const smalls = []; // each frame as the preview sees it
    const times = [];
    const started = Date.now();
    let start = null; // the pose angle the turn is measured from (the most frontal seen on the axis)
    let seenAt = -1;
    let previewed = -1;
    let timer = 0;
    const take = () => {
      if (run !== faceRun || !camera) return;
      frames.push(snapshot(video, 640, 0.9));
      smalls.push(snapshot(video, PREVIEW_SIDE, 0.7));
      times.push(Date.now());
      timer = setTimeout(take, FRAME_MS);
    };
    take();
    try {
      while (Date.now() - started < TURN_WAIT_MS) {
        stillRunning(run);
        const index = frames.length - 1;
        if (index <= previewed) {
          await sleep(60);
          continue;
        }
        previewed = index;
        const seen = await preview(smalls[index]);
        stillRunning(run);
        if (seen.faces !== 1) {
          faceGuide(seen.message_zh, "warn");
          continue;
        }
        const angle = seen[axis];
        if (start === null || Math.abs(angle) < Math.abs(start)) start = angle;
        const turned = sign * (angle - start);
        if (turned >= TURN_SEEN_DEGREES[axis] && index >= min - 1) {
          seenAt = index;
          break;
        }
        faceGuide(turned > 4 ? "继续，再" + text.replace("请", "").replace("向左", "").replace("向右", "") + "一点" : "", "turn");
      }
    } finally {
      clearTimeout(timer);
    }
    stillRunning(run);
    let end = frames.length;
    if (seenAt >= 0) {
      // The burst ends one frame after the turn was seen, and starts up to max_frames before.
      if (frames.length < seenAt + 2) {
        frames.push(snapshot(video, 640, 0.9));
        times.push(Date.now());
      }
      end = seenAt + 2;
      faceGuide("很好", "ok");
    }
    const from = Math.max(0, end - max);
    section("face").dataset.turnSeen = seenAt >= 0 ? "yes" : "no";
    return { frames: frames.slice(from, end), times: times.slice(from, end) };
  }

  function snapshot(video, side, quality) {
    const scale = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", quality).split(",")[1];
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
          message_zh: "请选择连拍的 " + min + "–" + max + " 张自拍（已选 " + files.length + " 张）",
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
        frames.push(await web.base64(ok ? file : await web.reencode(file, 960, 0.85)));
      }
      // A burst taken with the phone's own camera app: the times the photos were taken.
      await sendFrames(frames, files.map((file) => file.lastModified));
    } catch (error) {
      showError(error);
      faceReady(session);
    }
  }

  /** A refusal of the face step: shown, and the way on offered. True when handled. */
  function faceRefused(err) {
    if (!err.code || !/^(liveness|face)\./.test(err.code)) return false;
    showError(err);
    $("#face-arrow").textContent = "";
    if (err.code === "face.attempts_exhausted" || err.status === 429) {
      $("#face-instruction").textContent = "暂时无法继续核验";
      faceButtons(err.code === "liveness.previews_exhausted" ? "retry" : "review");
    } else if (/^liveness\.session_(expired|used|unknown)$/.test(err.code) || err.code === "liveness.flow_changed") {
      newSession(state.reg);
    } else if (err.code === "liveness.capture_problem" || /^liveness\.(frame|frames_count|preview)/.test(err.code)) {
      // Not judged, not counted: the same challenge again.
      faceAgain();
      if (err.details && typeof err.details.attempts_left === "number") faceAttemptsLeft(err.details.attempts_left);
    } else if (err.code === "liveness.sessions_exhausted") {
      $("#face-instruction").textContent = "核验未完成";
      faceButtons("none");
    } else {
      $("#face-instruction").textContent = "核验未完成";
      faceButtons("retry");
    }
    return true;
  }

  /** The burst, with the session's capture nonce and each frame's capture time (ms). */
  async function sendFrames(frames, times) {
    const session = state.session;
    const flowId = encodeURIComponent(state.reg.flow_id);
    const target = section("face");
    target.dataset.phase = "sending";
    target.dataset.bursts = String(Number(target.dataset.bursts || 0) + 1);
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
      target.dataset.phase = "";
      const err = asError(error);
      if (await recover(err)) return;
      if (!faceRefused(err)) {
        showError(err);
        $("#face-instruction").textContent = "核验未完成";
        faceButtons("retry");
      }
      return;
    }
    target.dataset.phase = "";
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
  // 人工审核: the case number, the expected time, the SMS promise, and a status that refreshes by itself
  // (every `poll_seconds`, and on 刷新); once a reviewer decides, the screen moves on to the next step.
  async function screenReview(reg) {
    show("review", "人工审核");
    const phone = reg.phone_masked || sessionStorage.getItem(STORE.phone) || "";
    $("#review-sms").textContent = phone
      ? "审核结果将以短信通知 " + phone + "，收到短信后回到这里继续办理。"
      : "审核结果将以短信通知您，收到短信后回到这里继续办理。";
    $("#review-updated").textContent = "";
    await reviewTick(reg.registration_id, false);
  }

  /** Read the case and the registration once; schedule the next read while the case is open. */
  async function reviewTick(registrationId, byHand) {
    stopPolling();
    if (currentScreen() !== "review" || !state.reg || state.reg.registration_id !== registrationId) return;
    let wait = 15;
    try {
      const reg = await api("GET", KINDS[state.kind].path + "/" + encodeURIComponent(registrationId));
      if (currentScreen() !== "review") return;
      if (reg.step !== "review") {
        const shown = render(reg); // (render clears the notice first, synchronously)
        if (reg.step !== "rejected") notice("人工审核已通过，请继续办理");
        await shown;
        return;
      }
      state.reg = reg;
      const mine = await api("GET", "/v1/flows/" + encodeURIComponent(reg.flow_id) + "/review");
      if (currentScreen() !== "review") return;
      wait = mine.poll_seconds || wait;
      $("#review-number").textContent = mine.case_number;
      $("#review-expected").textContent = mine.expected_zh;
      $("#review-status").textContent = mine.status === "open" ? "审核中" : "已审核";
      $("#review-reason").textContent = "您的资料已转人工审核。" + mine.reason_zh;
      clearErrors(section("review"));
      const now = new Date().toLocaleTimeString("zh-CN", { hour12: false });
      $("#review-updated").textContent = "最后更新 " + now + (byHand ? "（已刷新）" : "");
    } catch (error) {
      if (asError(error).status === 401) return;
      showError(error);
    }
    state.pollTimer = setTimeout(() => reviewTick(registrationId, false), wait * 1000);
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
    // Accepted once, its card no longer registered since (注销, 过户): the card as it is now, not a success.
    const ended = registering && outcome === "registered" ? reg.ended : null;
    target.dataset.ended = ended ? ended.step : "";
    if (ended) {
      mark.className = "result-mark ended";
      $("#result-text").textContent =
        ended.step === "transferred"
          ? "该登记已因过户终止"
          : ended.event === "scrapped"
            ? "车辆已报废，该实名登记已终止"
            : "该实名登记已注销";
      $("#result-reason").textContent =
        chinaTime(ended.at) +
        (ended.step === "transferred"
          ? " 车辆已过户给新车主，车联网卡不再登记在您的名下。"
          : ended.event === "scrapped"
            ? " 车辆已报废，车联网卡不再登记在您的名下。"
            : " 起车联网卡不再登记在您的名下，仅保留紧急呼叫；如需使用，请重新办理实名登记。");
      forget();
    } else if (outcome === "pending") {
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
      $("#result-text").textContent = "办理状态已更新，请在「我的车辆」中查看"; // never a raw state code
    }
    $("#result-receipt").replaceChildren(...receiptRows(reg, registering));
    $("#result-receipt").hidden = !reg.receipt_no;
    $("#result-card").replaceChildren(...vehicleBlock(reg.vehicle, reg.cards));
  }

  /** The receipt (受理回执): its number, when it was received (China time), the business and whose. */
  function receiptRows(reg, registering) {
    if (!reg.receipt_no) return [];
    const business = !registering ? "实名注销" : transferring(reg) ? "过户实名登记" : "实名登记";
    return [
      rows([
        ["受理编号", h("b", { class: "receipt-no", text: reg.receipt_no })],
        ["受理时间", chinaTime(reg.submitted_at)],
        ["办理业务", business],
        [registering ? "登记人" : "原登记人", reg.holder_masked],
      ]),
    ];
  }

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
    loadBackfill(); // beside the list: its failure never keeps the list from showing
    const list = $("#vehicle-list");
    $("#vehicle-progress").replaceChildren();
    list.replaceChildren(h("p", { class: "hint", text: "正在加载…" }));
    let doc;
    try {
      doc = await api("GET", "/v1/me/vehicles");
    } catch (error) {
      list.replaceChildren();
      showError(error);
      return;
    }
    $("#vehicle-progress").replaceChildren(...inProgress(doc.in_progress || []));
    if (!doc.vehicles.length) {
      const none = (doc.in_progress || []).length ? "暂无已提交登记的车辆。" : "暂无已办理登记的车辆。";
      list.replaceChildren(h("p", { class: "hint center", text: none }));
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
          v.receipt_no ? rows([["登记受理编号", v.receipt_no], ["注销受理编号", v.deregistration_receipt_no]]) : null,
          cardHistory(v.cards),
          h(
            "div",
            { class: "vehicle-actions" },
            // The registration's receipt as it reads now (a holder reads a trustee's registration here only).
            v.receipt_no && !v.delegated
              ? h("button", {
                  type: "button",
                  class: "secondary receipt-open",
                  text: "查看登记回执",
                  onclick: (event) => openReceipt(event.currentTarget, v),
                })
              : null,
            // 委托登记: only the owner (the card's holder) may de-register, never the trustee.
            registered && !v.registered_for && !(v.deregistration && v.deregistration.step === "pending")
              ? h("button", {
                  type: "button",
                  class: "secondary deregister",
                  text: "注销实名",
                  onclick: () => screenDeregisterVehicle(v),
                })
              : null,
          ),
        );
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // 待补登记 (第二十二条): the cars in use whose card was never registered, as the OEM's sales record
  // names the phone signed in with; each with the deadline and 立即登记 (the registration starts with
  // its VIN, as if typed, where the notice gives it; else the VIN screen asks for it, naming its tail),
  // and the owner's choice of receiving the backfill SMS (never the codes).
  async function loadBackfill() {
    const box = $("#vehicle-backfill");
    box.replaceChildren();
    let doc;
    try {
      doc = await api("GET", "/v1/me/backfill");
    } catch (_) {
      return; // the notice is a reminder: without it 我的车辆 still shows
    }
    if (currentScreen() === "vehicles") box.replaceChildren(...backfillBlock(doc));
  }

  /** "2026-06-30" → "2026年6月30日". */
  function dateZh(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    return y + "年" + m + "月" + d + "日";
  }

  function backfillBlock(doc) {
    if (!doc.cards.length) return [];
    return [
      h("h3", { class: "progress-title", text: "待补登记" }),
      ...doc.cards.map((c) =>
        h(
          "div",
          { class: "card vehicle backfill", "data-vin": c.vin_masked },
          h("p", {}, h("b", { text: "车辆识别代号尾号 " + c.vin_masked.slice(-6) })),
          h("p", { class: "hint", text: "车联网卡 " + c.iccid_masked + " 尚未实名登记，未登记的车联网卡仅保留紧急呼叫功能。" }),
          h("p", {
            class: "backfill-deadline",
            text: c.deadline ? "请于 " + dateZh(c.deadline) + " 前完成实名登记" : "请尽快完成实名登记",
          }),
          h("button", {
            type: "button",
            class: "primary backfill-register",
            text: "立即登记",
            onclick: (event) => registerBackfill(event.currentTarget, c),
          }),
        ),
      ),
      h(
        "div",
        { class: "backfill-sms" },
        h("p", {
          class: "hint",
          text: doc.opted_out
            ? "您已退订补登记提醒短信。办理登记时的验证码短信不受影响。"
            : "我们会通过短信提醒您在截止日期前完成登记。",
        }),
        h("button", {
          type: "button",
          class: "link backfill-opt",
          text: doc.opted_out ? "重新接收补登记短信" : "不再接收补登记短信",
          onclick: (event) => toggleBackfillSms(event.currentTarget, doc.opted_out),
        }),
      ),
    ];
  }

  /** 立即登记: with the card's VIN (the stage takes the sales record's phone as proof of holding the
   * car) the registration of that car starts as if its VIN had been typed on the VIN screen; without
   * it, the VIN screen opens naming the car's tail, and the person types or scans the VIN. */
  async function registerBackfill(button, card) {
    const vin = card.vin;
    if (!vin) {
      screenVin("registration", card.vin_masked);
      return;
    }
    await busy(button, "正在开始…", async () => {
      state.kind = "registration";
      state.reg = null;
      state.otherId = false; // a new registration reads the ID card first again
      const reg = await api("POST", KINDS.registration.path, { vin, delegated: false });
      state.vin = vin; // the sandbox head unit is looked up by it on local stages
      await render(reg);
    });
  }

  async function toggleBackfillSms(button, optedOut) {
    await busy(button, "提交中…", async () => {
      const doc = await api(optedOut ? "DELETE" : "POST", "/v1/me/backfill/opt-out");
      $("#vehicle-backfill").replaceChildren(...backfillBlock(doc));
      notice(doc.opted_out ? "已退订补登记提醒短信" : "已恢复接收补登记提醒短信");
    });
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

  /** Each card's history, oldest first as it happened (China time), the receipt number on the entry
   * that started a registration or de-registration; folded away until asked for. */
  function cardHistory(cards) {
    const several = (cards || []).length > 1;
    const items = [];
    for (const card of cards || []) {
      for (const e of card.history || []) {
        const what = EVENTS[e.event] || CARD_STATES[e.to_state] || e.event;
        items.push(
          h(
            "li",
            {},
            h("time", { datetime: e.at, text: chinaTime(e.at) }),
            " ",
            what,
            several ? "（卡尾号 " + card.iccid_masked.slice(-4) + "）" : null,
            e.receipt_no ? h("small", { class: "receipt-no", text: "受理编号 " + e.receipt_no }) : null,
          ),
        );
      }
    }
    if (!items.length) return null;
    return h("details", { class: "history" }, h("summary", { text: "办理记录" }), h("ol", {}, ...items));
  }

  /** The cars whose registration or de-registration is not finished: the step due and 继续办理. */
  function inProgress(items) {
    if (!items.length) return [];
    return [
      h("h3", { class: "progress-title", text: "办理中" }),
      ...items.map((r) =>
        h(
          "div",
          { class: "card vehicle in-progress", "data-registration": r.registration_id },
          h("p", {}, h("b", { text: KINDS[r.kind] ? KINDS[r.kind].name : r.kind }), " · 车辆识别代号尾号 " + r.vin_masked.slice(-6)),
          h("p", { class: "hint", text: stepWords(r) }),
          h("button", {
            type: "button",
            class: "primary continue",
            text: "继续办理",
            onclick: () => openRegistration(r.kind, r.registration_id),
          }),
        ),
      ),
    ];
  }

  async function openReceipt(button, v) {
    await busy(button, "加载中…", async () => {
      state.kind = "registration";
      await render(await api("GET", KINDS.registration.path + "/" + encodeURIComponent(v.registration_id)));
    });
  }

  // ---------------------------------------------------------------------------------------------
  // 注销: the car picked in 我的车辆, confirmed on its own screen (选择车辆确认信息); no VIN typed
  function screenDeregisterVehicle(v) {
    state.kind = "deregistration";
    state.reg = null;
    state.deregPick = v;
    show("deregister_vehicle", "车主注销实名");
    const registered = (v.cards || []).filter((c) => c.state === "registered");
    // Each card says whom it is registered to (vehicleBlock): the person who must pass the face check.
    $("#deregister-card").replaceChildren(...vehicleBlock(v, registered), rows([["登记受理编号", v.receipt_no]]));
  }

  async function startDeregistration() {
    const v = state.deregPick;
    if (!v) return screenVehicles();
    await busy($("#deregister-start"), "请稍候…", async () => {
      state.kind = "deregistration";
      await render(await api("POST", KINDS.deregistration.path, { registration_id: v.registration_id }));
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The other entrances: 用户协议 and 隐私政策 at login, help (客服), 单位用户业务, 投诉举报, the VIN
  // read from a photo; and what every screen needs to be usable with a screen reader or a keyboard.
  let helpFacts = null; // GET /v1/help, once
  let accountTexts = null; // GET /v1/account-texts, once

  async function facts() {
    if (!helpFacts) helpFacts = await api("GET", "/v1/help");
    return helpFacts;
  }

  async function platformTexts() {
    if (!accountTexts) accountTexts = (await api("GET", "/v1/account-texts")).documents;
    return accountTexts;
  }

  /** The texts accepted at login, or null (with the refusal under the checkbox) until it is ticked. */
  async function agreedTexts() {
    if (!$("#login-agree").checked) {
      showError(
        new ApiError(422, {
          code: "client.agree",
          message_zh: "请先阅读并勾选同意《用户协议》和《隐私政策》",
          field: "accepted",
        }),
      );
      $("#login-agree").focus();
      return null;
    }
    try {
      return (await platformTexts()).map((d) => ({ kind: d.kind, version: d.version, sha256: d.sha256 }));
    } catch (error) {
      showError(error);
      return null;
    }
  }

  async function showText(kind) {
    const dialog = $("#text-viewer");
    try {
      const doc = (await platformTexts()).find((d) => d.kind === kind);
      $("#text-viewer-title").textContent = doc.title; // the text says its version on its first line
      $("#text-viewer-body").replaceChildren(...markdown(doc.text));
    } catch (error) {
      showError(error);
      return;
    }
    openSheet(dialog);
  }

  function openSheet(dialog) {
    dialog.returnFocus = document.activeElement;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    $(".sheet-close", dialog).focus();
  }

  function closeSheet(dialog) {
    if (typeof dialog.close === "function") dialog.close();
    else dialog.removeAttribute("open");
    if (dialog.returnFocus && dialog.returnFocus.focus) dialog.returnFocus.focus();
  }

  function telLink(a, phone) {
    a.textContent = phone;
    a.href = "tel:" + phone.replace(/[^0-9+]/g, "");
  }

  async function openHelp() {
    try {
      const f = await facts();
      telLink($("#help-phone"), f.service_phone);
      $("#help-hours").textContent = f.oem_name + "客服 · " + f.service_hours;
      $("#faq-review-text").textContent =
        "人工审核通常在 " + f.review_expected_zh + "完成。完成后回到首页点“继续办理”，或在“我的车辆”中查看结果。";
    } catch (_) {
      // The questions still help without the phone: it says where the phone would be.
      $("#help-phone").textContent = "暂时无法获取，请稍后再打开";
      $("#help-phone").removeAttribute("href");
    }
    openSheet($("#help"));
  }

  async function screenEnterprise() {
    show("enterprise", "单位用户业务");
    const portal = $("#enterprise-portal");
    portal.hidden = true;
    $("#enterprise-how").textContent = "";
    try {
      const f = await facts();
      telLink($("#enterprise-call"), f.service_phone);
      $("#enterprise-call").textContent = "拨打客服电话 " + f.service_phone;
      if (f.enterprise_portal_url) {
        portal.href = f.enterprise_portal_url;
        portal.hidden = false;
        $("#enterprise-how").textContent =
          "请单位经办人在单位用户业务平台注册单位账号，上传以上材料，为单位的车辆逐辆办理。遇到问题请拨打客服电话（" +
          f.service_hours +
          "）。";
      } else {
        $("#enterprise-how").textContent =
          "单位用户业务平台尚未开通。请联系售车经销商，或拨打客服电话 " +
          f.service_phone +
          "（" +
          f.service_hours +
          "），由工作人员为您的单位预约办理。";
      }
    } catch (error) {
      showError(error);
    }
  }

  async function screenComplaint() {
    show("complaint", "投诉举报");
    $("#complaint-filed").hidden = true;
    $("#complaint-form").hidden = false;
    const phoneInput = $("#complaint-phone");
    if (!phoneInput.value) phoneInput.value = sessionStorage.getItem(STORE.loginPhone) || "";
    countComplaint();
    try {
      const f = await facts();
      $("#complaint-hint").textContent =
        "对车联网卡实名登记有异议、发现有人冒用您的身份办理，或对服务不满意，请告诉我们。" +
        f.oem_name +
        "将在 15 个工作日内与您联系。";
      $("#complaint-appeal").textContent =
        "也可以拨打客服电话 " +
        f.service_phone +
        "。对处理结果不满意，可拨打工业和信息化部电信用户申诉受理中心电话 12300。";
    } catch (_) {
      // the form works without these lines
    }
    await listComplaints();
  }

  function countComplaint() {
    const length = $("#complaint-description").value.length;
    $("#complaint-count").textContent = length + "/500";
  }

  async function listComplaints() {
    const list = $("#complaint-list");
    try {
      const doc = await api("GET", "/v1/me/complaints");
      if (!doc.complaints.length) {
        list.replaceChildren(h("p", { class: "hint", text: "您还没有提交过投诉。" }));
        return;
      }
      list.replaceChildren(
        ...doc.complaints.map((c) =>
          h(
            "div",
            { class: "card complaint" },
            h("h3", {}, c.category_zh, " ", h("span", { class: "badge " + c.status, text: c.status_zh })),
            rows([
              ["投诉编号", c.complaint_id],
              ["提交时间", new Date(c.created_at).toLocaleString("zh-CN", { hour12: false })],
              ["联系电话", c.contact_phone],
              ["车辆识别代号", c.vin ? "尾号 " + c.vin.slice(-6) : null],
            ]),
            h("p", { class: "complaint-text", text: c.description }),
          ),
        ),
      );
    } catch (error) {
      list.replaceChildren();
      showError(error);
    }
  }

  async function fileComplaint(event) {
    event.preventDefault();
    const body = {
      category: $("#complaint-category").value,
      description: $("#complaint-description").value.trim(),
      contact_phone: $("#complaint-phone").value.trim(),
    };
    const vin = $("#complaint-vin").value.replace(/\s+/g, "").toUpperCase();
    if (vin) body.vin = vin;
    clearErrors(section("complaint"));
    const missing = [];
    if (!body.category) missing.push({ field: "category", message_zh: "请选择投诉类型" });
    if (!body.description) missing.push({ field: "description", message_zh: "请写下您要投诉或举报的情况" });
    if (!validPhone(body.contact_phone))
      missing.push({ field: "contact_phone", message_zh: "请输入正确的 11 位手机号码，方便我们联系您" });
    if (missing.length) {
      showError(new ApiError(422, { code: "client.complaint", details: { errors: missing } }));
      const first = $('[data-field="' + missing[0].field + '"]', section("complaint"));
      if (first) first.focus();
      return;
    }
    await busy($("#complaint-submit"), "提交中…", async () => {
      const filed = await api("POST", "/v1/me/complaints", body);
      $("#complaint-form").reset();
      $("#complaint-phone").value = body.contact_phone;
      countComplaint();
      $("#complaint-form").hidden = true;
      const box = $("#complaint-filed");
      box.replaceChildren(
        h("p", { class: "filed-title", text: "投诉已提交" }),
        h("p", { text: filed.message_zh }),
        h("button", {
          type: "button",
          class: "secondary block",
          text: "再提交一条",
          onclick: () => {
            box.hidden = true;
            $("#complaint-form").hidden = false;
            $("#complaint-category").focus();
          },
        }),
      );
      box.hidden = false;
      box.tabIndex = -1;
      box.focus();
      await listComplaints();
    });
  }

  async function scanVin() {
    const input = $("#vin-scan");
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    const label = $("#vin-scan-label");
    const read = $("#vin-read");
    read.hidden = true;
    clearErrors(section("vin"));
    label.classList.add("busy");
    label.firstChild.textContent = "识别中…";
    try {
      // scaled and re-encoded as JPEG by the shared photos.js, sent as base64
      const image = await web.base64(await web.reencode(file, 1600, 0.88));
      const found = await api("POST", "/v1/me/vin-scan", { image });
      $("#vin-input").value = found.vin;
      read.textContent = "已识别车辆识别代号 " + found.vin + "，请与行驶证或铭牌核对无误后点“查询车辆”。";
      read.hidden = false;
      $("#vin-input").focus();
    } catch (error) {
      const err = asError(error);
      // The photo's refusal belongs with the VIN it was meant to fill.
      showError(new ApiError(err.status, { code: err.code, message_zh: err.messageZh, field: "vin" }));
    } finally {
      label.classList.remove("busy");
      label.firstChild.textContent = "拍照识别";
    }
  }

  /** What a screen reader needs that the markup alone does not say: photo previews named by their slot. */
  function describeImages() {
    for (const img of $$(".doc-face img")) {
      if (img.getAttribute("alt")) continue;
      const slot = $("span", img.parentElement);
      img.setAttribute("alt", "已选择的照片：" + (slot ? slot.textContent : "证件"));
    }
  }

  function wireEntrances() {
    describeImages();
    // A refusal under a field is read out when it appears, like the screen's own refusals.
    for (const slot of $$(".field-error, section .error:not([role])")) slot.setAttribute("role", "alert");
    $("#login-read-user_agreement").addEventListener("click", () => showText("user_agreement"));
    $("#login-read-privacy_policy").addEventListener("click", () => showText("privacy_policy"));
    $("#login-agree").addEventListener("change", () => {
      if ($("#login-agree").checked) {
        const box = $("#login-agree").closest(".field");
        box.classList.remove("invalid");
        $(".field-error", box).hidden = true;
      }
    });
    $("#text-viewer-close").addEventListener("click", () => closeSheet($("#text-viewer")));
    $("#help-close").addEventListener("click", () => closeSheet($("#help")));
    for (const id of ["#login-help", "#home-help", "#progress-help"]) $(id).addEventListener("click", openHelp);
    $("#home-enterprise").addEventListener("click", screenEnterprise);
    $("#home-complaint").addEventListener("click", screenComplaint);
    $("#complaint-form").addEventListener("submit", fileComplaint);
    $("#complaint-description").addEventListener("input", countComplaint);
    $("#vin-scan").addEventListener("change", scanVin);
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
      if (inTablet()) return endTablet(false);
      forget();
      logout();
    });
    $("#tablet-end").addEventListener("click", () => endTablet(false));
    $("#home-register").addEventListener("click", () => screenVin("registration"));
    $("#home-deregister").addEventListener("click", screenVehicles);
    $("#home-vehicles").addEventListener("click", screenVehicles);
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
    $("#confirm-form").addEventListener("submit", confirmIdentity);
    $("#documents-other-id").addEventListener("click", () => {
      state.otherId = true;
      screenIdentity();
    });
    $("#identity-scan").addEventListener("click", () => {
      state.otherId = false;
      screenDocuments(state.reg);
    });
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
      busy($("#review-refresh"), "刷新中…", () => reviewTick(state.reg.registration_id, true)),
    );
    $("#upload-cancel").addEventListener("click", web.cancelUpload);
    $("#consents-submit").addEventListener("click", giveConsents);
    $("#submit-button").addEventListener("click", submit);
    $("#result-vehicles").addEventListener("click", screenVehicles);
    $("#deregister-start").addEventListener("click", startDeregistration);
    $("#deregister-back").addEventListener("click", screenVehicles);
    $("#result-home").addEventListener("click", home);
    $("#vehicles-register").addEventListener("click", () => screenVin("registration"));
    $("#home-backfill-open").addEventListener("click", () => screenVehicles());
    for (const mark of ["#home-register-mark", "#home-deregister-mark"]) {
      $(mark).addEventListener("click", (event) => goToResume(event.currentTarget.dataset.kind));
    }
  }

  wire();
  wireEntrances();
  window.addEventListener("popstate", (event) => onBack(event.state));
  // A new hand-off link opened in this tab (the dealer's next customer): start afresh from it.
  window.addEventListener("hashchange", () => {
    if (/^#handoff=/.test(location.hash)) location.reload();
  });
  boot();

  /** Open the app: a reload shows its screen again (its entry), a link names one, else home. */
  async function boot() {
    const handback = new URLSearchParams(location.search).get("handback");
    if (handback) return handBack(handback === "idle");
    takeHandoff();
    tabletMode();
    const kept = history.state && history.state.cheka && !history.state.guard ? history.state : null;
    const named = kept || entryOfHash(location.hash);
    if (!kept) {
      // The first entry is a guard under the app's own: back on home comes back to home.
      history.replaceState({ cheka: 1, guard: true }, "", location.pathname + location.search);
    }
    if (!signedIn()) {
      afterLogin = named && named.screen !== "login" ? named : null;
      show("login", "手机号登录");
      return;
    }
    restoring = Boolean(kept);
    try {
      if (named) await showEntry(named);
      else home();
    } finally {
      restoring = false;
    }
  }
})();
