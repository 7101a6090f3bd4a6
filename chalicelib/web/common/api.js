/* The API client shared by the web clients (portal, console, H5): JSON in, JSON out; refusals are
 * {code, message_zh, message_en, field?, details?}. The access token (short-lived) stays in the tab
 * (sessionStorage); the refresh token in localStorage, so the sign-in survives closing the page. An
 * access token refused with 401 is renewed once, quietly, at the client's refresh path (accounts:
 * /v1/accounts/refresh; owners: /v1/auth/refresh), and the call asked again. */
"use strict";

(function (web) {
  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.message_en || body.code)) || String(status));
      this.status = status;
      this.code = (body && body.code) || "http." + status;
      this.messageZh = (body && body.message_zh) || "服务暂时不可用（" + status + "），请稍后重试";
      this.field = (body && body.field) || null;
      this.details = (body && body.details) || {};
    }
  }

  const NETWORK = { code: "network", message_zh: "网络连接失败，请检查网络后重试" };
  const DEVICE_KEY = "cheka.device";

  /** This browser's device id (X-Device-Id): random, kept in localStorage; the server counts asks for
   * SMS codes per device with it, and knows nothing else by it. */
  function deviceId() {
    let id = null;
    try {
      id = localStorage.getItem(DEVICE_KEY);
      if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
        const bytes = new Uint8Array(16);
        crypto.getRandomValues(bytes);
        id = "d" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
        localStorage.setItem(DEVICE_KEY, id);
      }
    } catch (_) {
      return null; // storage refused (private mode): the IP's limits still hold
    }
    return id;
  }
  const EXPIRED = "登录已过期，请重新登录";

  /** Where the API is: the page is served at <root>/<mount>, the API at <root>/v1/... */
  function rootOf(mount) {
    return location.pathname.replace(/\/+$/, "").replace(new RegExp("/" + mount + "$"), "");
  }

  async function parse(response) {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  /**
   * A client for one web app.
   *  mount: the app's mount point ("portal"); store: the prefix of its storage keys ("cheka.portal");
   *  refreshPath: where a refresh token is traded; publicPaths: calls that never carry nor renew a
   *  token (sign-in, refresh, logout); onSignedOut(message): the session ended (shown the login).
   */
  function client(options) {
    const root = options.root !== undefined ? options.root : rootOf(options.mount);
    const keys = {
      token: options.store + ".token",
      refresh: options.store + ".refresh",
      subject: options.store + ".subject",
    };
    const publicPaths = options.publicPaths || [];
    let refreshing = null; // the one refresh in flight in this tab

    function keep(session) {
      sessionStorage.setItem(keys.token, session.token || session.access_token);
      sessionStorage.setItem(keys.subject, session.subject || "");
      if (session.refresh_token) localStorage.setItem(keys.refresh, session.refresh_token);
    }

    function forget() {
      sessionStorage.removeItem(keys.token);
      sessionStorage.removeItem(keys.subject);
      localStorage.removeItem(keys.refresh);
    }

    function signedIn() {
      return Boolean(sessionStorage.getItem(keys.token) || localStorage.getItem(keys.refresh));
    }

    function ended(message) {
      forget();
      if (options.onSignedOut) options.onSignedOut(message || EXPIRED);
    }

    async function renew(again) {
      const token = localStorage.getItem(keys.refresh);
      if (!token) return { ok: false, message: EXPIRED };
      let response;
      try {
        response = await fetch(root + options.refreshPath, {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
        });
      } catch (_) {
        throw new ApiError(0, NETWORK);
      }
      const doc = (await parse(response)) || {};
      if (response.ok) {
        keep(doc);
        return { ok: true };
      }
      // Another tab refreshed meanwhile: trade its new token for this tab's access token.
      if (again && localStorage.getItem(keys.refresh) !== token) return renew(false);
      if (response.status === 401) return { ok: false, message: doc.message_zh || EXPIRED };
      throw new ApiError(response.status, doc.code ? doc : {});
    }

    /** Trade the refresh token for a new pair: {ok: true}, or {ok: false, message} once the session ended. */
    function refresh() {
      if (refreshing) return refreshing;
      refreshing = renew(true).finally(() => {
        refreshing = null;
      });
      return refreshing;
    }

    /** ``more``: headers of this call only (e.g. a captcha answer on a route without a body). */
    async function call(method, path, body, retried, more) {
      const open = publicPaths.includes(path.split("?")[0]);
      if (!open && !sessionStorage.getItem(keys.token) && localStorage.getItem(keys.refresh)) {
        const renewed = await refresh(); // a new tab, or the page opened again
        if (!renewed.ok) {
          ended(renewed.message);
          throw new ApiError(401, { code: "auth.session_ended", message_zh: renewed.message });
        }
      }
      const headers = Object.assign({ Accept: "application/json" }, more || {});
      const device = deviceId();
      if (device) headers["X-Device-Id"] = device;
      const token = open ? null : sessionStorage.getItem(keys.token);
      if (token) headers.Authorization = "Bearer " + token;
      const init = { method, headers };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      let response;
      try {
        response = await fetch(root + path, init);
      } catch (_) {
        throw new ApiError(0, NETWORK);
      }
      const doc = await parse(response);
      if (!response.ok) {
        const error = new ApiError(response.status, doc && doc.code ? doc : {});
        if (response.status === 401 && token) {
          // The access token expired (or was refused): renew it once, quietly, and ask again.
          const renewed = retried ? { ok: false, message: error.messageZh } : await refresh();
          if (renewed.ok) return call(method, path, body, true, more);
          ended(renewed.message);
        }
        throw error;
      }
      return doc;
    }

    return {
      root,
      call,
      keep,
      forget,
      signedIn,
      refresh,
      token: () => sessionStorage.getItem(keys.token),
      refreshToken: () => localStorage.getItem(keys.refresh),
      subject: () => sessionStorage.getItem(keys.subject) || "",
    };
  }

  /** Any thrown value as an ApiError (a bug in the page is logged, and told as "not done"). */
  function asError(error) {
    if (error instanceof ApiError) return error;
    // A client's own error of the same shape (the H5 client's ApiError) is taken as it is.
    if (error && typeof error.messageZh === "string" && typeof error.code === "string") return error;
    console.error(error);
    return new ApiError(0, { code: "client", message_zh: "操作未完成，请重试" });
  }

  web.deviceId = deviceId;
  web.ApiError = ApiError;
  web.client = client;
  web.rootOf = rootOf;
  web.asError = asError;
})((window.ChekaWeb = window.ChekaWeb || {}));
