/* The car maker's console: staff sign in at the stage's OpenID Connect provider (authorization code +
 * PKCE S256, state and nonce checked), the console calls the API with the provider's access token
 * (renewed with the refresh token before it expires), shows who is signed in and their queues
 * (queues.js: review cases, fleet cases, spot checks, complaints) and cases (cases.js), and signs out at
 * the API (the sign-in is refused from then on) and at the provider. An ES module over
 * ../web/common/api.js and ui.js (ChekaWeb, loaded first as plain scripts). Routes: #/queues/<tab>,
 * #/review/<case id>, #/fleet/<batch id>, #/spot/<check id>, #/campaigns (补登记活动, campaigns.js) and
 * #/campaign/<campaign id>. */

import { campaigns } from "./campaigns.js";
import { cases } from "./cases.js";
import { tickTimers } from "./labels.js";
import { queues } from "./queues.js";

(function (web) {
  const { $, $$, h } = web;
  const STORE = "cheka.console";
  const PENDING = STORE + ".pending"; // the sign-in on its way: state, nonce, PKCE verifier
  const IDP = STORE + ".idp"; // the provider's refresh token, ID token and the access token's expiry
  const LOGGED_OUT = STORE + ".logout"; // the state of a sign-out on its way back from the provider

  const ROLE_NAMES = {
    reviewer: "审核员",
    review_lead: "审核组长",
    admin: "管理员",
    auditor: "审计员",
    operations: "运营",
    call_centre: "外呼坐席",
  };
  const MFA_NAMES = {
    "amr:otp": "密码 + 动态验证码",
    "amr:totp": "密码 + 动态验证码",
    "amr:mfa": "密码 + 第二重验证",
  };
  let config = null; // /v1/staff/config: issuer, client_id, endpoints, scopes
  let roles = []; // the signed-in staff member's roles

  const api = web.client({
    mount: "console",
    store: STORE,
    refreshPath: "/v1/staff/refresh", // never asked: the provider's refresh token is traded below
    publicPaths: ["/v1/staff/config"],
    onSignedOut: (message) => showLogin(message),
  });

  const consoleUrl = () => location.origin + api.root + "/console";

  function show(screen) {
    document.body.dataset.screen = screen;
    for (const el of $$("main > section[data-screen]")) el.hidden = el.dataset.screen !== screen;
    const inside = ["home", "case", "campaigns", "campaign"].includes(screen);
    $("#sign-out").hidden = !inside;
    $("#pages").hidden = !inside || !drive.allowed(roles);
    for (const link of $$("#pages a")) {
      const here = link.dataset.page === (screen === "campaign" ? "campaigns" : screen === "case" ? "home" : screen);
      if (here) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (screen !== "campaign") drive.leave();
  }

  function showLogin(message) {
    show("login");
    const scope = $('section[data-screen="login"]');
    web.clearErrors(scope);
    if (message) web.showError(new web.ApiError(401, { code: "console.signed_out", message_zh: message }), scope);
  }

  function failBoot(message) {
    show("boot");
    $("#boot-text").hidden = true;
    web.showError(new web.ApiError(0, { code: "console.boot", message_zh: message }), $('section[data-screen="boot"]'));
  }

  // ---------------------------------------------------------------------------------------------
  // PKCE, state and nonce; the tokens' claims.

  function randomText(bytes) {
    const data = crypto.getRandomValues(new Uint8Array(bytes));
    return base64url(data);
  }

  function base64url(bytes) {
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function challengeOf(verifier) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    return base64url(new Uint8Array(digest));
  }

  /** The claims of a JWT (the ID token came straight from the provider's token endpoint). */
  function claimsOf(jwt) {
    const part = String(jwt || "").split(".")[1] || "";
    const padded = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function idp() {
    try {
      return JSON.parse(sessionStorage.getItem(IDP) || "null");
    } catch (_) {
      return null;
    }
  }

  function keepTokens(tokens, previous) {
    const access = claimsOf(tokens.access_token);
    api.keep({ token: tokens.access_token, subject: access.sub });
    sessionStorage.setItem(
      IDP,
      JSON.stringify({
        refresh_token: tokens.refresh_token || (previous && previous.refresh_token) || null,
        id_token: tokens.id_token || (previous && previous.id_token) || null,
        expires_at: access.exp,
      }),
    );
  }

  function forgetTokens() {
    api.forget();
    sessionStorage.removeItem(IDP);
  }

  // ---------------------------------------------------------------------------------------------
  // The provider's endpoints.

  async function tokenCall(form) {
    let response;
    try {
      response = await fetch(config.token_endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams(form).toString(),
      });
    } catch (_) {
      throw new web.ApiError(0, { code: "network", message_zh: "无法连接员工登录服务，请稍后重试" });
    }
    const doc = await response.json().catch(() => ({}));
    if (!response.ok) {
      const code = "idp." + (doc.error || response.status);
      throw new web.ApiError(response.status, { code, message_zh: "登录未完成，请重新登录" });
    }
    return doc;
  }

  async function startSignIn() {
    const verifier = randomText(48);
    const pending = { state: randomText(24), nonce: randomText(24), verifier, at: Date.now() };
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: config.client_id,
      redirect_uri: consoleUrl(),
      scope: (config.scopes || ["openid"]).join(" "),
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await challengeOf(verifier),
      code_challenge_method: "S256",
    });
    location.assign(config.authorization_endpoint + "?" + query.toString());
  }

  /** Back from the provider with ?code&state (or ?error): the tokens, once state and nonce match. */
  async function finishSignIn(params) {
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    sessionStorage.removeItem(PENDING);
    history.replaceState(null, "", consoleUrl());
    if (params.get("error")) {
      return params.get("error") === "access_denied" ? "已取消登录" : "登录未完成，请重新登录";
    }
    if (!pending || pending.state !== params.get("state") || Date.now() - pending.at > 10 * 60 * 1000) {
      return "登录未完成，请重新登录"; // not the sign-in this tab started (or started too long ago)
    }
    const tokens = await tokenCall({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: consoleUrl(),
      client_id: config.client_id,
      code_verifier: pending.verifier,
    });
    const id = claimsOf(tokens.id_token);
    const audiences = Array.isArray(id.aud) ? id.aud : [id.aud];
    if (id.iss !== config.issuer || !audiences.includes(config.client_id) || id.nonce !== pending.nonce) {
      return "登录未完成，请重新登录";
    }
    keepTokens(tokens, null);
    return null;
  }

  /** Renew the access token with the provider's refresh token shortly before it expires. */
  async function fresh() {
    const held = idp();
    if (!held || !held.refresh_token || !held.expires_at) return;
    if (held.expires_at - Date.now() / 1000 > 60) return;
    try {
      const tokens = await tokenCall({
        grant_type: "refresh_token",
        refresh_token: held.refresh_token,
        client_id: config.client_id,
      });
      keepTokens(tokens, held);
    } catch (error) {
      if (web.asError(error).code === "network") throw error;
      // The provider refused the refresh token (revoked, expired): the sign-in is over.
      forgetTokens();
      showLogin("登录已过期，请重新登录");
      throw new web.ApiError(401, { code: "console.signed_out", message_zh: "登录已过期，请重新登录" });
    }
  }

  async function call(method, path, body) {
    await fresh();
    return api.call(method, path, body);
  }

  // ---------------------------------------------------------------------------------------------
  // The signed-in pages.

  async function home() {
    const me = await call("GET", "/v1/staff/me");
    show("home");
    const held = idp();
    const id = held && held.id_token ? claimsOf(held.id_token) : {};
    const name = id.name || id.preferred_username || "";
    $("#staff-name").textContent = name || "员工";
    const list = $("#staff-roles");
    list.className = "roles";
    list.replaceChildren(...me.roles.map((r) => h("span", { class: "badge", text: ROLE_NAMES[r] || r })));
    $("#staff-mfa").textContent = MFA_NAMES[me.mfa] || (me.mfa ? "密码 + 第二重验证" : "");
    roles = me.roles;
    board.setup(roles);
    await routes.run();
  }

  // The pages behind the hash: the queues (a tab each) and one case.
  const ctx = {
    web,
    call: (method, path, body) => call(method, path, body),
    get roles() {
      return roles;
    },
    root: () => api.root,
    go: (name, ...args) => routes.go(name, ...args),
    /** A file the API answers with (e.g. CSV), with the staff member's token: {text, headers}. */
    fetchText: (path) => fetchText(path),
  };
  const board = queues(ctx);
  const pages = cases(ctx);
  const drive = campaigns(ctx);

  async function fetchText(path) {
    await fresh();
    let response;
    try {
      response = await fetch(api.root + path, { headers: { Authorization: "Bearer " + (api.token() || ""), Accept: "text/csv, application/json" } });
    } catch (_) {
      throw new web.ApiError(0, { code: "network", message_zh: "网络连接失败，请检查网络后重试" });
    }
    const text = await response.text();
    if (!response.ok) {
      let doc = {};
      try {
        doc = JSON.parse(text);
      } catch (_) {
        // not the API's error model: told by its status
      }
      throw new web.ApiError(response.status, doc && doc.code ? doc : {});
    }
    return { text, headers: response.headers };
  }

  let lastTab = ""; // the tab a case was opened from

  async function queuePage(tab) {
    if (board.tabs().length === 0 && drive.allowed(roles)) {
      routes.go("campaigns"); // no queue of theirs: the campaigns are what they work on here
      return;
    }
    show("home");
    lastTab = tab || "";
    const scope = $('section[data-screen="home"]');
    web.clearErrors(scope);
    try {
      await board.show(tab || board.tabs()[0]);
    } catch (error) {
      if (web.asError(error).status !== 401) web.showError(error, scope);
    }
  }

  function casePage(kind) {
    return async (id) => {
      show("case");
      window.scrollTo(0, 0);
      if (id) await pages.open(kind, id);
    };
  }

  async function campaignsPage() {
    if (!drive.allowed(roles)) return routes.go("queues");
    show("campaigns");
    await drive.showList();
  }

  async function campaignPage(id) {
    if (!drive.allowed(roles) || !id) return routes.go("campaigns");
    show("campaign");
    window.scrollTo(0, 0);
    await drive.open(id);
  }

  const routes = web.router(
    {
      queues: queuePage,
      review: casePage("review"),
      fleet: casePage("fleet"),
      spot: casePage("spot"),
      campaigns: campaignsPage,
      campaign: campaignPage,
    },
    "queues",
  );
  async function signOut() {
    const held = idp();
    let endSession = config && config.end_session_endpoint;
    try {
      const out = await api.call("POST", "/v1/staff/logout");
      endSession = out.end_session_endpoint || endSession;
    } catch (_) {
      // The access token is refused already (expired or revoked): the provider's logout still ends it.
    }
    forgetTokens();
    if (!endSession) {
      showLogin();
      web.notice("已退出登录");
      return;
    }
    const state = randomText(16);
    sessionStorage.setItem(LOGGED_OUT, state);
    const query = new URLSearchParams({ client_id: config.client_id, post_logout_redirect_uri: consoleUrl(), state });
    if (held && held.id_token) query.set("id_token_hint", held.id_token);
    location.assign(endSession + "?" + query.toString());
  }

  // ---------------------------------------------------------------------------------------------

  async function boot() {
    try {
      config = await api.call("GET", "/v1/staff/config");
    } catch (error) {
      const err = web.asError(error);
      failBoot(err.code === "staff.sign_in_not_configured" ? "本环境未配置员工登录，请联系管理员" : err.messageZh);
      return;
    }
    const params = new URLSearchParams(location.search);
    let message = null;
    if (params.has("code") || params.has("error")) {
      try {
        message = await finishSignIn(params);
      } catch (error) {
        message = web.asError(error).messageZh;
      }
    } else if (params.has("state")) {
      const expected = sessionStorage.getItem(LOGGED_OUT);
      sessionStorage.removeItem(LOGGED_OUT);
      history.replaceState(null, "", consoleUrl());
      if (expected && expected === params.get("state")) {
        showLogin();
        web.notice("已退出登录");
        return;
      }
    }
    if (message || !api.token()) {
      forgetTokens();
      showLogin(message);
      return;
    }
    try {
      await home();
    } catch (error) {
      const err = web.asError(error);
      if (err.status === 401) return; // shown the login already (onSignedOut)
      show("home");
      web.showError(err, $('section[data-screen="home"]'));
    }
  }

  $("#sign-in").addEventListener("click", () => {
    const scope = $('section[data-screen="login"]');
    web.busy($("#sign-in"), "正在跳转…", scope, startSignIn);
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#back").addEventListener("click", (event) => {
    event.preventDefault();
    routes.go("queues", lastTab);
  });
  setInterval(tickTimers, 30 * 1000);

  boot();
})(window.ChekaWeb);
