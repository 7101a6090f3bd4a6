/* 企业门户 (the enterprise portal, seed 001): sign-up, the two-step login, real-name authentication of a
 * natural or a legal person (the form, the ID and business-licence photos read by the platform, the face
 * check in the browser), agents (apply; the legal person approves, rejects, revokes), sessions and
 * passwords. Plain JavaScript on the shared files of web/common (API client, field errors, SMS button,
 * router, photos, face step); every text goes in as text, never markup. */
"use strict";

(function (web) {
  const { $, $$, h } = web;

  const STORE = "cheka.portal";
  const REALNAME_KEY = STORE + ".realname"; // the real-name in progress: flow id and the enterprise's facts
  const PUBLIC = [
    "/v1/accounts",
    "/v1/accounts/sms-codes",
    "/v1/accounts/login",
    "/v1/accounts/login/verify",
    "/v1/accounts/refresh",
    "/v1/accounts/logout",
    "/v1/accounts/password-reset",
    "/v1/accounts/password-reset/confirm",
    "/v1/account-texts",
    "/v1/dev/sms-drop",
  ];
  const client = web.client({
    mount: "portal",
    store: STORE,
    refreshPath: "/v1/accounts/refresh",
    publicPaths: PUBLIC,
    onSignedOut: (message) => signedOut(message),
  });
  const call = client.call;

  const DOCS = {
    legal: [
      ["business_licence", "营业执照扫描件", "营业执照正面，统一社会信用代码和名称清晰"],
      ["id_front", "法定代表人证件（人像面）", "证件人像面，四角完整"],
      ["id_back", "法定代表人证件（国徽面）", "证件国徽面，有效期限清晰"],
    ],
    natural: [
      ["id_front", "证件扫描件（人像面）", "证件人像面，四角完整"],
      ["id_back", "证件扫描件（国徽面）", "证件国徽面，有效期限清晰"],
    ],
  };
  const ENTERPRISE_TYPES = {
    enterprise: "企业",
    individual_business: "个体工商户",
    public_institution: "事业单位",
    government: "机关",
    social_organisation: "社会团体",
    other: "其他组织",
  };
  const LEGAL_PERSON_TYPES = { legal_representative: "法定代表人", person_in_charge: "负责人", operator: "经营者" };
  const ID_TYPES = {
    resident_id: "居民身份证",
    hk_macau_permit: "港澳居民居住证",
    taiwan_permit: "台湾居民居住证",
    foreign_permanent_id: "外国人永久居留身份证",
    hk_macau_pass: "港澳居民来往内地通行证",
    taiwan_pass: "台湾居民来往大陆通行证",
    passport: "护照",
  };

  let account = null; // GET /v1/accounts/me, as last read
  let challenge = null; // the login's first step: {challenge_id, phone_masked, identifier}
  let texts = null; // 用户协议 and 隐私政策

  // ---------------------------------------------------------------------------------------------
  // Screens

  function section(name) {
    return $('section[data-screen="' + name + '"]');
  }

  function current() {
    return section(document.body.dataset.screen);
  }

  function show(name, title) {
    if (face) face.stop();
    for (const s of $$("main > section[data-screen]")) s.hidden = s.dataset.screen !== name;
    document.body.dataset.screen = name;
    section(name).dataset.ready = ""; // "yes" once what the screen shows is loaded
    $("#title").textContent = title || "企业门户";
    document.title = (title || "企业门户") + " · 车联网卡实名登记";
    web.clearErrors(section(name));
    const inside = client.signedIn();
    $("#go-home").hidden = !inside || name === "home";
    $("#sign-out").hidden = !inside;
    window.scrollTo(0, 0);
  }

  function fail(error) {
    web.showError(error, current());
  }

  function rows(target, pairs) {
    target.replaceChildren(
      ...pairs.filter((p) => p[1]).map(([label, value]) => h("div", {}, h("dt", { text: label }), h("dd", {}, value))),
    );
  }

  function value(id) {
    return $("#" + id).value.trim();
  }

  // ---------------------------------------------------------------------------------------------
  // Sign-in state

  let farewell = ""; // told on the login screen once it shows

  function signedOut(message) {
    account = null;
    sessionStorage.removeItem(REALNAME_KEY);
    farewell = message || "";
    router.go("login");
  }

  async function signOut() {
    const token = client.refreshToken();
    try {
      if (token) await call("POST", "/v1/accounts/logout", { refresh_token: token });
    } catch (_) {
      // signed out here whatever the server answered
    }
    client.forget();
    signedOut("已退出登录");
  }

  async function loadMe() {
    account = await call("GET", "/v1/accounts/me");
    return account;
  }

  /** Screens that need a signed-in account: the login first, then back here. */
  function needSignIn(render) {
    return async (...args) => {
      if (!client.signedIn()) {
        router.go("login");
        return;
      }
      try {
        await render(...args);
      } catch (error) {
        fail(error);
      }
      if (current()) current().dataset.ready = "yes";
    };
  }

  /** Local stages only: the SMS the platform kept instead of sending (the route is 404 elsewhere). */
  async function showDevSms(masked) {
    const box = $("#dev-sms");
    let doc;
    try {
      doc = await call("GET", "/v1/dev/sms-drop?limit=10");
    } catch (_) {
      box.hidden = true;
      return;
    }
    const mine = (doc.messages || []).filter((m) => !masked || m.phone === masked);
    if (!mine.length) return;
    box.replaceChildren(h("b", { text: "开发环境 · 本地短信（未真实发送）" }), h("div", { text: mine[0].phone + "：" + mine[0].text }));
    box.hidden = false;
  }

  function validPhone(phone) {
    return /^1[3-9]\d{9}$/.test(phone);
  }

  // ---------------------------------------------------------------------------------------------
  // 用户注册

  async function accountTexts() {
    if (!texts) texts = (await call("GET", "/v1/account-texts")).documents;
    return texts;
  }

  async function readTexts() {
    const dialog = $("#text-viewer");
    try {
      const docs = await accountTexts();
      const parts = [];
      for (const doc of docs) {
        parts.push(h("h3", { text: "《" + doc.title + "》（" + doc.version + "）" }));
        for (const p of String(doc.text).split(/\n{2,}/)) parts.push(h("p", { text: p.replace(/^#+\s*/, "").replace(/\*\*/g, "") }));
      }
      $("#text-viewer-body").replaceChildren(...parts);
      dialog.showModal();
    } catch (error) {
      fail(error);
    }
  }

  function screenSignup() {
    show("signup", "用户注册");
  }

  async function signUp(event) {
    event.preventDefault();
    const scope = section("signup");
    await web.busy($("#signup-submit"), "注册中…", scope, async () => {
      if ($("#signup-password").value !== $("#signup-password-confirm").value) {
        throw web.refusal("password_confirm", "两次输入的密码不一致");
      }
      if (!$("#signup-agree").checked) throw web.refusal("accepted", "请先阅读并勾选同意《用户协议》和《隐私政策》");
      const accepted = (await accountTexts()).map((d) => ({ kind: d.kind, version: d.version, sha256: d.sha256 }));
      const created = await call("POST", "/v1/accounts", {
        login_name: value("signup-login-name"),
        password: $("#signup-password").value,
        password_confirm: $("#signup-password-confirm").value,
        email: value("signup-email"),
        phone: value("signup-phone"),
        code: value("signup-code"),
        accepted,
      });
      $("#signed-up-text").textContent =
        "账号 " + created.login_name + " 已注册，绑定手机号 " + created.phone_masked + "。登录名注册后不可修改。";
      $("#login-identifier").value = created.login_name;
      $("#signup-form").reset();
      router.go("signed-up");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // 用户登录: identifier + password → a code to the bound phone → the code

  function screenLogin() {
    if (client.signedIn()) {
      router.go("home");
      return;
    }
    show("login", "用户登录");
    web.notice(farewell);
    farewell = "";
  }

  async function startLogin() {
    const identifier = value("login-identifier");
    const password = $("#login-password").value;
    const missing = [];
    if (!identifier) missing.push({ field: "identifier", message_zh: "请输入登录名、统一社会信用代码或身份证号" });
    if (!password) missing.push({ field: "password", message_zh: "请输入密码" });
    if (missing.length) {
      throw new web.ApiError(422, { code: "client.login", message_zh: missing[0].message_zh, details: { errors: missing } });
    }
    // After a few asks from this device the server wants a captcha first (ChekaWeb.withCaptcha).
    const answer = await web.withCaptcha((extra) =>
      call("POST", "/v1/accounts/login", { identifier, password, ...extra }),
    );
    challenge = { ...answer, identifier };
    $("#login-sent").textContent = "验证码已发送至账号绑定的手机 " + answer.phone_masked + "，5 分钟内有效";
    $("#login-sent").hidden = false;
    $("#login-code").focus();
    showDevSms(answer.phone_masked);
    return { phone_masked: answer.phone_masked, resend_after: 60 };
  }

  async function login(event) {
    event.preventDefault();
    const scope = section("login");
    await web.busy($("#login-submit"), "登录中…", scope, async () => {
      const code = value("login-code");
      if (!challenge || challenge.identifier !== value("login-identifier")) {
        throw web.refusal("code", "请先点“获取验证码”，验证码将发送到账号绑定的手机");
      }
      if (!/^\d{6}$/.test(code)) throw web.refusal("code", "请输入 6 位短信验证码");
      const signed = await call("POST", "/v1/accounts/login/verify", { challenge_id: challenge.challenge_id, code });
      client.keep({ token: signed.token, refresh_token: signed.refresh_token, subject: signed.account.account_id });
      account = signed.account;
      challenge = null;
      web.notice("");
      $("#login-form").reset();
      $("#login-sent").hidden = true;
      $("#dev-sms").hidden = true;
      router.go("home");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // 找回密码

  async function resetPassword(event) {
    event.preventDefault();
    await web.busy($("#reset-submit"), "提交中…", section("reset"), async () => {
      await call("POST", "/v1/accounts/password-reset/confirm", {
        identifier: value("reset-identifier"),
        code: value("reset-code"),
        new: $("#reset-new").value,
      });
      $("#reset-form").reset();
      router.go("login");
      web.notice("密码已重设，请用新密码登录");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // 用户中心

  async function screenHome() {
    show("home", "用户中心");
    const me = await loadMe();
    const roles = me.roles || [];
    rows($("#home-account"), [
      ["登录名", me.login_name],
      ["账号类型", me.kind_zh],
      ["实名信息", me.real_name ? me.real_name.name_masked + (me.real_name.company_name ? "（" + me.real_name.company_name + "）" : "") : ""],
      ["绑定手机", me.phone_masked],
      ["电子邮箱", me.email_masked],
      ["经办企业", me.agent_of || ""],
    ]);
    const unverified = me.kind === "unverified";
    $("#home-realname-todo").hidden = !unverified;
    $("#home-realname").hidden = me.kind === "dealer";
    $("#home-realname-state").textContent = unverified ? "尚未认证" : "已认证（" + me.kind_zh + "）";
    $("#home-enterprise").hidden = !(roles.includes("enterprise_legal") || roles.includes("enterprise_agent"));
    $("#home-agents").hidden = me.kind !== "legal";
    $("#home-apply").hidden = me.kind !== "natural";
    const enterprise = roles.includes("enterprise_legal") || roles.includes("enterprise_agent");
    $("#home-fleet").hidden = !enterprise;
    $("#home-vehicles").hidden = !enterprise;
  }

  // ---------------------------------------------------------------------------------------------
  // 实名认证: the form → the photos → the face → submit

  function progress() {
    try {
      return JSON.parse(sessionStorage.getItem(REALNAME_KEY) || "null");
    } catch (_) {
      return null;
    }
  }

  function keepProgress(p) {
    if (p) sessionStorage.setItem(REALNAME_KEY, JSON.stringify(p));
    else sessionStorage.removeItem(REALNAME_KEY);
  }

  function kindChosen() {
    return $("#realname-kind-legal").checked ? "legal" : "natural";
  }

  function syncKind() {
    const legal = kindChosen() === "legal";
    $("#realname-legal").hidden = !legal;
    $("#rn-name-label").textContent = legal ? "法定代表人姓名" : "真实姓名";
    $("#rn-name").placeholder = legal ? "请输入法定代表人姓名" : "请输入姓名";
    $("#rn-id-type-label").textContent = legal ? "法定代表人证件类型" : "证件类型";
    $("#rn-id-number-label").textContent = legal ? "法定代表人证件号" : "证件号";
    $("#rn-id-number").placeholder = legal ? "请输入法定代表人证件号" : "请输入证件号";
  }

  async function screenRealname(step) {
    const state = await call("GET", "/v1/accounts/me/real-name");
    if (state.status === "verified" || state.status === "in_review") {
      keepProgress(null);
      return screenRealnameDone(state);
    }
    const p = progress();
    if (step === "docs" && p) return screenDocs(p);
    if (step === "face" && p) return screenFace(p);
    if (step === "submit" && p) return screenSubmit(p);
    show("realname", "实名认证");
    const status = $("#realname-status");
    status.hidden = state.status !== "refused";
    status.className = "warn-box";
    status.textContent = state.status === "refused" ? state.message_zh : "";
    if (p) {
      $("#realname-kind-" + p.kind).checked = true;
      if (p.legal) {
        $("#rn-enterprise-type").value = p.legal.enterprise_type;
        $("#rn-legal-person-type").value = p.legal.legal_person_type;
        $("#rn-uscc").value = p.legal.uscc;
        $("#rn-company-name").value = p.legal.company_name;
      }
    }
    syncKind();
  }

  function legalDetails() {
    return {
      enterprise_type: $("#rn-enterprise-type").value,
      legal_person_type: $("#rn-legal-person-type").value,
      uscc: value("rn-uscc").toUpperCase(),
      company_name: value("rn-company-name"),
    };
  }

  /** What the form misses, said under each field before anything is sent. */
  function formRefusals(kind) {
    const missing = [];
    const need = (id, field, message) => {
      if (!value(id)) missing.push({ field, message_zh: message });
    };
    if (kind === "legal") {
      need("rn-enterprise-type", "enterprise_type", "请选择企业或机构类型");
      need("rn-uscc", "uscc", "请填写统一社会信用代码");
      need("rn-company-name", "company_name", "请填写法人企业或机构名称");
      need("rn-legal-person-type", "legal_person_type", "请选择法人类型");
    }
    need("rn-name", "name", kind === "legal" ? "请填写法定代表人姓名" : "请填写真实姓名");
    need("rn-id-number", "id_number", "请填写证件号");
    need("rn-address", "address", "请填写联系地址");
    return missing;
  }

  async function saveRealnameForm(event) {
    event.preventDefault();
    const scope = section("realname");
    await web.busy($("#realname-next"), "保存中…", scope, async () => {
      const kind = kindChosen();
      const missing = formRefusals(kind);
      if (missing.length) {
        throw new web.ApiError(422, { code: "client.form", message_zh: missing[0].message_zh, details: { errors: missing } });
      }
      let p = progress();
      if (!p || p.kind !== kind) {
        const flow = await call("POST", "/v1/flows", { purpose: "account_verification" });
        p = { flow_id: flow.flow_id, kind, done: {} };
      }
      const legal = kind === "legal" ? legalDetails() : null;
      const identity = {
        id_type: $("#rn-id-type").value,
        id_number: value("rn-id-number").toUpperCase(),
        name: value("rn-name"),
        address: value("rn-address"),
      };
      if (legal) {
        identity.uscc = legal.uscc;
        identity.company_name = legal.company_name;
      }
      await call("PUT", "/v1/flows/" + encodeURIComponent(p.flow_id) + "/identity", identity);
      p.legal = legal;
      p.id_type = identity.id_type;
      p.name_masked = web.maskName(identity.name);
      p.id_masked = web.maskId(identity.id_number);
      p.done = {}; // what was typed changed: every photo is read again against it
      keepProgress(p);
      router.go("realname", "docs");
    });
  }

  function docsOf(p) {
    const docs = DOCS[p.kind];
    // Only the resident ID card has a back the platform reads (its validity); other documents: one photo.
    return p.id_type === "resident_id" ? docs : docs.filter(([kind]) => kind !== "id_back");
  }

  let consentDoc = null; // 人脸信息处理单独同意, as served

  function consentParagraphs(text) {
    return String(text)
      .split(/\n{2,}/)
      .map((para) => h("p", { text: para.replace(/^#+\s*/, "").replace(/\*\*/g, "") }));
  }

  /** The separate biometric consent, before the ID card's portrait is uploaded (its detection is face
   * processing): true when the flow holds it already. */
  async function docsConsent(p) {
    const flow = await call("GET", "/v1/flows/" + encodeURIComponent(p.flow_id));
    const given = flow.checks && flow.checks.biometric_consent === "passed";
    $("#docs-consent").hidden = given;
    $("#docs-list").hidden = !given;
    if (given) return true;
    consentDoc = (await call("GET", "/v1/consents")).documents.find((d) => d.kind === "biometric_consent");
    $("#docs-consent-title").textContent = "单独同意 · " + consentDoc.title + "（" + consentDoc.version + "）";
    $("#docs-consent-text").replaceChildren(...consentParagraphs(consentDoc.text));
    $("#docs-consent-check").checked = false;
    $("#docs-consent-submit").disabled = true;
    return false;
  }

  async function giveDocsConsent() {
    const p = progress();
    await web.busy($("#docs-consent-submit"), "提交中…", section("realname-docs"), async () => {
      const info = { user_agent: navigator.userAgent.slice(0, 300), screen: screen.width + "x" + screen.height };
      await call("POST", "/v1/flows/" + encodeURIComponent(p.flow_id) + "/biometric-consent", {
        version: consentDoc.version,
        sha256: consentDoc.sha256,
        client: info,
      });
      await docsConsent(p);
    });
  }

  async function screenDocs(p) {
    show("realname-docs", "上传证件");
    $("#docs-review").hidden = true;
    section("realname-docs").dataset.ready = "";
    $("#docs-hint").textContent =
      p.kind === "legal"
        ? "请上传营业执照和法定代表人证件正反面照片（支持 jpg、png），系统将识别并与填写的信息核对。"
        : "请上传证件正反面照片（支持 jpg、png），系统将识别并与填写的信息核对。";
    const list = $("#docs-list");
    list.replaceChildren(
      ...docsOf(p).map(([kind, label, hint]) => {
        const input = h("input", { type: "file", accept: "image/*", id: "doc-" + kind + "-file" });
        input.addEventListener("change", () => onDocument(kind, input));
        return h(
          "div",
          { class: "doc", id: "doc-" + kind, "data-state": p.done[kind] ? "done" : "" },
          h("strong", { text: label }),
          h("p", { class: "doc-status", text: p.done[kind] ? "已上传并核对一致" : hint }),
          h("label", { class: "secondary block" }, h("span", { text: p.done[kind] ? "重新上传" : "选择文件" }), input),
        );
      }),
    );
    $("#docs-validity").hidden = !p.validity;
    $("#docs-validity").textContent = p.validity ? "证件有效期限：" + p.validity : "";
    syncDocsNext(p);
    await docsConsent(p);
    section("realname-docs").dataset.ready = "yes";
  }

  function syncDocsNext(p) {
    $("#docs-next").disabled = !docsOf(p).every(([kind]) => p.done[kind]);
  }

  function docState(kind, stateName, text) {
    const box = $("#doc-" + kind);
    box.dataset.state = stateName;
    $(".doc-status", box).textContent = text;
    $("label span", box).textContent = stateName === "done" ? "重新上传" : "选择文件";
  }

  function validityText(reading) {
    if (!reading || !reading.valid_from) return "";
    const until = reading.valid_until === "permanent" || !reading.valid_until ? "长期" : reading.valid_until;
    return reading.valid_from + " 至 " + until;
  }

  async function onDocument(kind, input) {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    const p = progress();
    web.clearErrors(section("realname-docs"));
    p.done[kind] = false;
    keepProgress(p);
    syncDocsNext(p);
    try {
      await web.storePhoto(client, p.flow_id, kind, file, (text) => docState(kind, "busy", text));
      docState(kind, "busy", "正在识别并核对…");
      const read = await call("POST", "/v1/flows/" + encodeURIComponent(p.flow_id) + "/ocr/" + kind);
      if (read && read.review_case_id) {
        docState(kind, "done", "该类证件由人工核对，已转人工审核");
      } else {
        docState(kind, "done", "已上传并核对一致");
      }
      p.done[kind] = true;
      if (kind === "id_back") p.validity = validityText(read && read.reading);
      keepProgress(p);
      $("#docs-validity").hidden = !p.validity;
      $("#docs-validity").textContent = p.validity ? "证件有效期限：" + p.validity : "";
    } catch (error) {
      const err = web.asError(error);
      docState(kind, "failed", err.messageZh);
      // A photo stored but not agreeing (or not readable): a reviewer may look at it instead.
      $("#docs-review").hidden = !/^(ocr|authority)\./.test(err.code);
      if (err.field && !["kind", "key"].includes(String(err.field))) {
        web.showError(err, section("realname-docs"));
      }
    }
    syncDocsNext(p);
  }

  let face = null;

  /** Whose face the face screen checks: the real-name in progress, or a fleet batch's responsible person. */
  let faceTarget = null;

  function startFace(target) {
    show("face", "人脸核验");
    faceTarget = target;
    if (!face) {
      face = web.faceStep({
        client,
        section: section("face"),
        flowId: () => faceTarget.flowId(),
        passed: async () => faceTarget.passed(),
        review: async () =>
          faceTarget.review
            ? faceTarget.review()
            : call("POST", "/v1/flows/" + encodeURIComponent(faceTarget.flowId()) + "/review"),
      });
    }
    face.start();
  }

  function screenFace(p) {
    startFace({
      flowId: () => progress().flow_id,
      passed: async () => router.go("realname", "submit"),
      review: async () => askReview(),
    });
  }

  function realnameBody(p) {
    const body = { flow_id: p.flow_id, kind: p.kind };
    if (p.legal) Object.assign(body, p.legal);
    return body;
  }

  function screenSubmit(p) {
    show("realname-submit", "提交实名认证");
    const pairs = [["用户类型", p.kind === "legal" ? "法人" : "自然人"]];
    if (p.legal) {
      pairs.push(
        ["企业或机构类型", ENTERPRISE_TYPES[p.legal.enterprise_type]],
        ["统一社会信用代码", p.legal.uscc],
        ["企业或机构名称", p.legal.company_name],
        ["法人类型", LEGAL_PERSON_TYPES[p.legal.legal_person_type]],
      );
    }
    pairs.push(
      [p.legal ? "法定代表人" : "姓名", p.name_masked],
      ["证件类型", ID_TYPES[p.id_type]],
      ["证件号", p.id_masked],
      ["证件有效期限", p.validity || ""],
    );
    rows($("#submit-rows"), pairs);
  }

  async function submitRealname() {
    const p = progress();
    await web.busy($("#realname-submit"), "提交中…", section("realname-submit"), async () => {
      const state = await call("POST", "/v1/accounts/me/real-name", realnameBody(p));
      keepProgress(null);
      await client.refresh(); // the token of the account's new kind (法人账号: the enterprise's roles)
      screenRealnameDone(state);
    });
  }

  async function askReview() {
    const p = progress();
    const state = await call("POST", "/v1/accounts/me/real-name/review", realnameBody(p));
    keepProgress(null);
    screenRealnameDone(state);
  }

  async function docsReview() {
    await web.busy($("#docs-review-submit"), "提交中…", section("realname-docs"), askReview);
  }

  function screenRealnameDone(state) {
    show("realname-done", "实名认证");
    const ok = state.status === "verified";
    $("#done-mark").className = "result-mark " + (ok ? "ok" : "wait");
    $("#done-text").textContent = ok ? "实名认证已完成" : state.message_zh;
    const pairs = [
      ["用户类型", state.kind === "legal" ? "法人" : state.kind === "natural" ? "自然人" : ""],
      ["姓名", state.name || ""],
      ["认证时间", web.chinaTime(state.verified_at)],
      ["审核编号", state.case_number || ""],
    ];
    if (state.enterprise) {
      pairs.push(["企业名称", state.enterprise.company_name], ["统一社会信用代码", state.enterprise.uscc]);
    }
    rows($("#done-rows"), pairs);
    $("#done-next").textContent = !ok
      ? "审核结果出来后，登录即可查看。"
      : state.kind === "legal"
        ? "本账号已成为该企业的法人账号，可在“经办人审核”中审核本企业的经办人。"
        : "可在“经办人申请”中申请成为企业的经办人。";
  }

  // ---------------------------------------------------------------------------------------------
  // 企业信息 (the legal person or an approved agent: their own enterprise only)

  async function screenEnterprise() {
    show("enterprise", "企业信息");
    $("#enterprise-rows").replaceChildren();
    $("#enterprise-actions").replaceChildren();
    const e = await call("GET", "/v1/enterprise");
    rows($("#enterprise-rows"), [
      ["企业名称", e.company_name],
      ["统一社会信用代码", e.uscc],
      ["企业或机构类型", e.enterprise_type_zh],
      ["法定代表人", e.representative_name],
      ["我的身份", e.my_role_zh + "（" + e.my_login_name + "）"],
    ]);
    $("#enterprise-actions-hint").textContent =
      e.my_role === "enterprise_legal" ? "本企业的全部操作，最新的在前。" : "我为本企业所做的操作，最新的在前。";
    const actions = await call("GET", "/v1/enterprise/actions?limit=20");
    $("#enterprise-actions").replaceChildren(
      ...actions.items.map((a) =>
        h("li", {}, h("time", { text: web.chinaTime(a.at) }), " ", a.action_zh, " · ", a.actor_role_zh + " " + a.actor_name_masked),
      ),
    );
    if (!actions.items.length) $("#enterprise-actions").append(h("li", { text: "暂无操作记录" }));
  }

  // ---------------------------------------------------------------------------------------------
  // 经办人审核 (法人账号)

  async function screenAgents() {
    show("agents", "经办人审核");
    const list = $("#agents-list");
    list.replaceChildren();
    const doc = await call("GET", "/v1/enterprise/agents");
    if (!doc.items.length) {
      list.append(h("p", { class: "hint", text: "暂无经办人申请。" }));
      return;
    }
    list.replaceChildren(...doc.items.map(agentCard));
  }

  function badgeOf(status) {
    return { pending: "wait", approved: "ok", rejected: "bad", revoked: "" }[status] || "";
  }

  function agentCard(g) {
    const card = h(
      "div",
      { class: "card agent", "data-account": g.account_id, "data-status": g.status },
      h("p", { class: "agent-head" }, h("strong", { text: g.name_masked }), " ", h("span", { class: "badge " + badgeOf(g.status), text: g.status_zh })),
    );
    const body = h("dl", { class: "rows" });
    rows(body, [
      ["账号名称", g.login_name],
      ["申请时间", web.chinaTime(g.applied_at)],
      ["处理时间", web.chinaTime(g.decided_at)],
      ["原因", g.reason || ""],
    ]);
    card.append(body);
    const reasonBox = h(
      "label",
      { class: "field", hidden: true },
      h("span", { text: "驳回或撤销的原因" }),
      h("input", { "data-field": "reason", maxlength: "100", placeholder: "请填写原因，申请人可以看到" }),
      h("em", { class: "field-error", hidden: true }),
    );
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const actions = h("div", { class: "agent-actions" });
    const decide = async (button, decision, label) => {
      const reason = $("input", reasonBox).value.trim();
      if (decision !== "approve" && reasonBox.hidden) {
        reasonBox.hidden = false;
        $("input", reasonBox).focus();
        return;
      }
      await web.busy(button, label, card, async () => {
        if (decision !== "approve" && !reason) throw web.refusal("reason", "请填写原因");
        const path = "/v1/enterprise/agents/" + encodeURIComponent(g.account_id) + "/" + decision;
        const done = await call("POST", path, decision === "approve" ? {} : { reason });
        web.notice({ approve: "已同意，", reject: "已驳回，", revoke: "已撤销，" }[decision] + g.name_masked + " 现在" + done.status_zh);
        card.replaceWith(agentCard(done));
      });
    };
    if (g.status === "pending") {
      const approve = h("button", { type: "button", class: "secondary", text: "同意" });
      const reject = h("button", { type: "button", class: "secondary danger", text: "拒绝" });
      approve.addEventListener("click", () => decide(approve, "approve", "处理中…"));
      reject.addEventListener("click", () => decide(reject, "reject", "处理中…"));
      actions.append(approve, reject);
    } else if (g.status === "approved") {
      const revoke = h("button", { type: "button", class: "secondary danger", text: "撤销授权" });
      revoke.addEventListener("click", () => decide(revoke, "revoke", "处理中…"));
      actions.append(revoke);
    }
    if (actions.childElementCount) card.append(reasonBox, error, actions);
    return card;
  }

  // ---------------------------------------------------------------------------------------------
  // 经办人申请 (自然人账号)

  async function screenApply() {
    show("apply", "经办人申请");
    await listApplications();
  }

  async function listApplications() {
    const doc = await call("GET", "/v1/enterprise/agent-applications");
    const list = $("#apply-list");
    if (!doc.items.length) {
      list.replaceChildren(h("p", { class: "hint", text: "暂无申请。" }));
      return;
    }
    list.replaceChildren(
      ...doc.items.map((g) => {
        const card = h(
          "div",
          { class: "card application", "data-status": g.status },
          h("p", {}, h("strong", { text: g.company_name || g.uscc }), " ", h("span", { class: "badge " + badgeOf(g.status), text: g.status_zh })),
        );
        const body = h("dl", { class: "rows" });
        rows(body, [
          ["统一社会信用代码", g.uscc],
          ["申请时间", web.chinaTime(g.applied_at)],
          ["处理时间", web.chinaTime(g.decided_at)],
          ["原因", g.reason || ""],
        ]);
        card.append(body);
        return card;
      }),
    );
  }

  async function apply(event) {
    event.preventDefault();
    await web.busy($("#apply-submit"), "提交中…", section("apply"), async () => {
      const missing = [];
      if (!value("apply-company-name")) missing.push({ field: "company_name", message_zh: "请输入企业名称" });
      if (!value("apply-uscc")) missing.push({ field: "uscc", message_zh: "请输入统一社会信用代码" });
      if (missing.length) throw new web.ApiError(422, { code: "client.form", message_zh: missing[0].message_zh, details: { errors: missing } });
      await call("POST", "/v1/enterprise/agent-applications", {
        company_name: value("apply-company-name"),
        uscc: value("apply-uscc").toUpperCase(),
      });
      $("#apply-form").reset();
      web.notice("申请已提交，请等待企业法人账号审核");
      await listApplications();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // 登录设备 and 修改密码

  async function screenSessions() {
    show("sessions", "登录设备");
    const doc = await call("GET", "/v1/accounts/me/sessions");
    $("#sessions-list").replaceChildren(
      ...doc.sessions.map((s) => {
        const card = h(
          "div",
          { class: "card session", "data-current": s.current ? "yes" : "no" },
          h("p", {}, h("strong", { text: s.current ? "本机（当前登录）" : "其他设备" })),
        );
        const body = h("dl", { class: "rows" });
        rows(body, [
          ["登录时间", web.chinaTime(s.created_at)],
          ["最近使用", web.chinaTime(s.last_used_at)],
          ["有效期至", web.chinaTime(s.expires_at)],
        ]);
        card.append(body);
        if (!s.current) {
          const end = h("button", { type: "button", class: "secondary", text: "退出该设备" });
          end.addEventListener("click", () =>
            web.busy(end, "处理中…", section("sessions"), async () => {
              await call("DELETE", "/v1/accounts/me/sessions/" + encodeURIComponent(s.session_id));
              web.notice("该设备已退出登录");
              await screenSessions();
            }),
          );
          card.append(end);
        }
        return card;
      }),
    );
  }

  async function endAll() {
    await web.busy($("#sessions-all"), "处理中…", section("sessions"), async () => {
      const done = await call("POST", "/v1/accounts/me/sessions/revoke-all");
      client.forget();
      signedOut("已退出全部 " + done.ended + " 个登录设备，请重新登录");
    });
  }

  async function changePassword(event) {
    event.preventDefault();
    await web.busy($("#password-submit"), "提交中…", section("password"), async () => {
      if ($("#password-new").value !== $("#password-confirm").value) {
        throw web.refusal("new_confirm", "两次输入的新密码不一致");
      }
      const done = await call("POST", "/v1/accounts/me/password", {
        current: $("#password-current").value,
        new: $("#password-new").value,
      });
      $("#password-form").reset();
      router.go("home");
      web.notice(done.other_sessions_ended ? "密码已修改，其他 " + done.other_sessions_ended + " 个设备已退出登录" : "密码已修改");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  // 单位车辆实名 and 实际使用人 (fleet.js): the portal's client and screens handed over
  const fleet = web.portalFleet({
    client,
    call,
    show,
    section,
    rows,
    router: () => router,
    startFace,
    showDevSms,
  });
  const fleetRoutes = Object.fromEntries(Object.entries(fleet.routes).map(([name, render]) => [name, needSignIn(render)]));

  const router = web.router(
    {
      ...fleetRoutes,
      login: screenLogin,
      signup: screenSignup,
      "signed-up": () => show("signed-up", "注册成功"),
      reset: () => show("reset", "找回密码"),
      home: needSignIn(screenHome),
      realname: needSignIn(screenRealname),
      enterprise: needSignIn(screenEnterprise),
      agents: needSignIn(screenAgents),
      apply: needSignIn(screenApply),
      sessions: needSignIn(screenSessions),
      password: needSignIn(async () => show("password", "修改密码")),
    },
    "login",
  );

  function wire() {
    $("#go-home").addEventListener("click", () => router.go("home"));
    $("#sign-out").addEventListener("click", signOut);
    $("#login-form").addEventListener("submit", login);
    $("#login-signup").addEventListener("click", () => router.go("signup"));
    $("#login-forgot").addEventListener("click", () => router.go("reset"));
    web.smsButton($("#login-send"), {
      keyOf: () => "login:" + value("login-identifier"),
      send: startLogin,
      scope: section("login"),
    });
    $("#signup-form").addEventListener("submit", signUp);
    $("#signup-back").addEventListener("click", () => router.go("login"));
    $("#signup-read").addEventListener("click", readTexts);
    $("#text-viewer-close").addEventListener("click", () => $("#text-viewer").close());
    web.smsButton($("#signup-send"), {
      keyOf: () => value("signup-phone"),
      check: () => {
        if (!validPhone(value("signup-phone"))) throw web.refusal("phone", "请输入正确的 11 位手机号码");
      },
      send: async () => ({
        ...(await web.withCaptcha((extra) =>
          call("POST", "/v1/accounts/sms-codes", { phone: value("signup-phone"), ...extra }),
        )),
        phone_masked: web.maskPhone(value("signup-phone")),
      }),
      sent: () => showDevSms(web.maskPhone(value("signup-phone"))),
      scope: section("signup"),
    });
    $("#signed-up-login").addEventListener("click", () => router.go("login"));
    $("#reset-form").addEventListener("submit", resetPassword);
    $("#reset-back").addEventListener("click", () => router.go("login"));
    web.smsButton($("#reset-send"), {
      keyOf: () => "reset:" + value("reset-identifier"),
      check: () => {
        if (!value("reset-identifier")) throw web.refusal("identifier", "请输入登录名、统一社会信用代码或身份证号");
      },
      send: async () => {
        await web.withCaptcha((extra) =>
          call("POST", "/v1/accounts/password-reset", { identifier: value("reset-identifier"), ...extra }),
        );
        showDevSms(null);
        // The platform answers the same whether the account exists: so does the page.
        return { notice: "如该账号存在，验证码已发送至其绑定的手机，5 分钟内有效" };
      },
      scope: section("reset"),
    });
    for (const [id, target] of [
      ["home-realname", "realname"],
      ["home-realname-go", "realname"],
      ["home-enterprise", "enterprise"],
      ["home-agents", "agents"],
      ["home-apply", "apply"],
      ["home-sessions", "sessions"],
      ["home-password", "password"],
      ["home-fleet", "fleet"],
      ["home-vehicles", "vehicles"],
      ["done-home", "home"],
    ]) {
      $("#" + id).addEventListener("click", () => router.go(target));
    }
    for (const radio of $$('input[name="realname-kind"]')) radio.addEventListener("change", syncKind);
    $("#realname-form").addEventListener("submit", saveRealnameForm);
    $("#docs-next").addEventListener("click", () => router.go("realname", "face"));
    $("#docs-consent-check").addEventListener("change", (e) => ($("#docs-consent-submit").disabled = !e.target.checked));
    $("#docs-consent-submit").addEventListener("click", giveDocsConsent);
    $("#docs-review-submit").addEventListener("click", docsReview);
    $("#docs-edit").addEventListener("click", () => router.go("realname"));
    $("#realname-submit").addEventListener("click", submitRealname);
    $("#apply-form").addEventListener("submit", apply);
    $("#sessions-all").addEventListener("click", endAll);
    $("#password-form").addEventListener("submit", changePassword);
  }

  wire();
  web.clearOnInput(document.querySelector("main"));
  router.run();
})(window.ChekaWeb);
