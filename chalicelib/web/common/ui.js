/* Page helpers shared by the web clients: building elements (text always goes in as text, never as
 * markup), a refusal shown under its field (the Chinese message of the API's error model), a busy
 * button, a short notice, the SMS-code button with its countdown, the captcha asked before some SMS
 * codes, masked display, and a small router on location.hash. Needs api.js (ChekaWeb.asError) loaded first. */
"use strict";

(function (web) {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      // Through the CSSOM, which the pages' Content-Security-Policy allows (a style attribute it refuses)
      else if (key === "style") el.style.cssText = String(value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // -------------------------------------------------------------------------------------------
  // Refusals: under the field the server names (an input with data-field="<name>" inside a .field
  // holding an <em class="field-error">), else in the scope's .error box.

  function clearErrors(root) {
    if (!root) return;
    for (const el of $$(".error", root)) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const box of $$(".field.invalid", root)) box.classList.remove("invalid");
    for (const input of $$('[aria-invalid="true"]', root)) input.removeAttribute("aria-invalid");
    for (const el of $$(".field-error", root)) {
      el.hidden = true;
      el.textContent = "";
    }
  }

  /** Show a refusal where it belongs: under its field(s) when the server names them, else in the scope. */
  function showError(error, scope) {
    const err = web.asError(error);
    if (!scope) return;
    if (err.code === "upload.cancelled") return; // the person's own choice, told by the upload only
    const fields = err.details && Array.isArray(err.details.errors) ? err.details.errors : [err];
    const elsewhere = [];
    const told = new Map(); // slot → the messages put under it by this refusal
    for (const e of fields) {
      const message = e.message_zh || e.messageZh || err.messageZh;
      const name = e.field ? String(e.field).split(".").pop() : "";
      const input = name ? $('[data-field="' + name + '"]', scope) : null;
      const box = input ? input.closest(".field") : null;
      const slot = box ? $(".field-error", box) : null;
      if (slot) {
        box.classList.add("invalid");
        // One field may be refused for several reasons (a password too short and without symbols).
        const messages = told.get(slot) || [];
        if (!messages.includes(message)) messages.push(message);
        told.set(slot, messages);
        slot.textContent = messages.join("；");
        slot.hidden = false;
        // Announced with the field: a screen reader reads the refusal when the field has focus.
        if (!slot.id) slot.id = "error-" + (input.id || name);
        input.setAttribute("aria-invalid", "true");
        const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        if (!described.includes(slot.id)) input.setAttribute("aria-describedby", described.concat(slot.id).join(" "));
      } else if (!elsewhere.includes(message)) {
        elsewhere.push(message);
      }
    }
    if (elsewhere.length) {
      const box = $(".error", scope);
      if (!box) return;
      box.textContent = elsewhere.join("；");
      box.hidden = false;
      box.scrollIntoView({ block: "nearest" });
    }
  }

  /** Once the person types into a field refused before, its refusal goes (the next check tells anew). */
  function clearOnInput(root) {
    root.addEventListener("input", (event) => {
      const box = event.target.closest && event.target.closest(".field.invalid");
      if (!box) return;
      box.classList.remove("invalid");
      for (const input of $$('[aria-invalid="true"]', box)) input.removeAttribute("aria-invalid");
      for (const slot of $$(".field-error", box)) {
        slot.hidden = true;
        slot.textContent = "";
      }
    });
  }

  /** A refusal made in the page (before asking the server), in the API's error model. */
  function refusal(field, messageZh) {
    return new web.ApiError(422, { code: "client." + field, message_zh: messageZh, field });
  }

  /** Run `work` with the button disabled and saying what is happening; errors go to `scope` (or to
   * what `scope()` names when they come: the H5 client's screen shown by then). */
  async function busy(button, label, scope, work) {
    const where = typeof scope === "function" ? scope : () => scope;
    const original = button.textContent;
    button.disabled = true;
    button.textContent = label;
    clearErrors(where());
    try {
      return await work();
    } catch (error) {
      showError(error, where());
      return undefined;
    } finally {
      button.disabled = false;
      button.textContent = original;
    }
  }

  let noticeTimer = 0;

  /** A short message floating under the bar (#notice), gone after a few seconds. */
  function notice(text) {
    const el = $("#notice");
    if (!el) return;
    clearTimeout(noticeTimer);
    el.textContent = text || "";
    el.hidden = !text;
    if (text) noticeTimer = setTimeout(() => (el.hidden = true), 5000);
  }

  // -------------------------------------------------------------------------------------------
  // The SMS-code button: one code a minute per phone (SPEC §3); it counts down for the phone typed.

  const SMS_WAIT = 60;
  const nextSend = new Map(); // phone (or the key the page gives) → time (ms) a new code may be asked

  /**
   * Wire `button` to ask for a code. `keyOf()` names who the code goes to (the phone typed, or the
   * account); `send()` asks the server and answers {resend_after?, phone_masked?}; `check()` may throw a
   * refusal before anything is sent; `scope` is where errors show.
   */
  function smsButton(button, { keyOf, send, check, scope, sent }) {
    function sync() {
      if (button.dataset.sending) return;
      const key = keyOf();
      const left = Math.ceil(((nextSend.get(key) || 0) - Date.now()) / 1000);
      if (left > 0) {
        button.disabled = true;
        button.textContent = left + " 秒后重发";
      } else {
        button.disabled = false;
        button.textContent = nextSend.has(key) ? "重新获取" : "获取验证码";
      }
    }
    button.addEventListener("click", async () => {
      clearErrors(scope);
      const key = keyOf();
      try {
        if (check) check();
      } catch (error) {
        showError(error, scope);
        return;
      }
      button.dataset.sending = "1";
      button.disabled = true;
      button.textContent = "发送中…";
      try {
        const answer = (await send()) || {};
        nextSend.set(key, Date.now() + (answer.resend_after || SMS_WAIT) * 1000);
        notice(answer.notice || "验证码已发送" + (answer.phone_masked ? "至 " + answer.phone_masked : "") + "，5 分钟内有效");
        if (sent) sent(answer);
      } catch (error) {
        const err = web.asError(error);
        const wait = Number(err.details.retry_after || err.details.resend_after || 0);
        if (err.status === 429 && wait > 0) nextSend.set(key, Date.now() + wait * 1000);
        showError(err, scope);
      } finally {
        delete button.dataset.sending;
        sync();
      }
    });
    setInterval(sync, 1000);
    sync();
    return { sync, reset: () => nextSend.delete(keyOf()) };
  }

  // -------------------------------------------------------------------------------------------
  // Masked display (what the page shows of a person's data it was given in clear, e.g. typed)

  function maskPhone(phone) {
    const p = String(phone || "");
    return p.length >= 7 ? p.slice(0, 3) + "****" + p.slice(-4) : p;
  }

  function maskId(number) {
    const n = String(number || "");
    return n.length > 8 ? n.slice(0, 4) + "*".repeat(n.length - 8) + n.slice(-4) : n.replace(/./g, "*");
  }

  function maskName(name) {
    const chars = Array.from(String(name || ""));
    if (chars.length <= 1) return chars.join("");
    return chars[0] + "*".repeat(chars.length - 1);
  }

  function chinaTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const china = new Date(d.getTime() + 8 * 3600 * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return (
      china.getUTCFullYear() + "-" + two(china.getUTCMonth() + 1) + "-" + two(china.getUTCDate()) +
      " " + two(china.getUTCHours()) + ":" + two(china.getUTCMinutes())
    );
  }

  // -------------------------------------------------------------------------------------------
  // A router on location.hash: #/<name>[/<arg>…]. `routes` maps a name to a function given the args;
  // `fallback` is the name shown for an empty or unknown hash.

  function router(routes, fallback) {
    function parseHash() {
      const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
      const name = parts[0] && routes[parts[0]] ? parts[0] : fallback;
      return { name, args: parts[0] && routes[parts[0]] ? parts.slice(1) : [] };
    }
    function run() {
      const { name, args } = parseHash();
      return routes[name](...args);
    }
    window.addEventListener("hashchange", run);
    return {
      run,
      current: () => parseHash().name,
      go(name, ...args) {
        const hash = "#/" + [name, ...args].map(encodeURIComponent).join("/");
        if (location.hash === hash) run();
        else location.hash = hash;
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // The captcha (图片验证码) some asks for an SMS code need after a few from one device or network:
  // the refusal (captcha.required 428, or captcha.wrong 422) carries a new challenge; the person
  // types the picture's characters and the ask is made again with them.

  /** Show ``challenge`` (its picture) in a sheet; the typed answer, or null if the person cancels. */
  function askCaptcha(challenge, problem) {
    return new Promise((resolve) => {
      const input = h("input", {
        id: "captcha-answer",
        "data-field": "captcha_answer",
        autocomplete: "off",
        autocapitalize: "characters",
        spellcheck: "false",
        maxlength: "16",
        "aria-label": "图片中的字符",
      });
      const dialog = h(
        "dialog",
        { class: "sheet captcha", id: "captcha", "aria-labelledby": "captcha-title" },
        h("form", { method: "dialog", class: "sheet-body" },
          h("h2", { id: "captcha-title", text: "请输入图片中的字符" }),
          problem ? h("p", { class: "error", role: "alert", text: problem }) : null,
          h("img", { id: "captcha-image", src: challenge.image, alt: "图片验证码", width: "160", height: "60" }),
          h("div", { class: "field" }, input),
          h("div", { class: "captcha-actions" },
            h("button", { type: "button", class: "secondary", id: "captcha-cancel", text: "取消" }),
            h("button", { type: "submit", id: "captcha-ok", text: "确定" }),
          ),
        ),
      );
      let answer = null;
      $("form", dialog).addEventListener("submit", () => {
        answer = input.value.trim() || null;
      });
      $("#captcha-cancel", dialog).addEventListener("click", () => dialog.close());
      dialog.addEventListener("close", () => {
        dialog.remove();
        resolve(answer);
      });
      document.body.append(dialog);
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
      input.focus();
    });
  }

  /** ``send(extra)`` made again with a captcha answer (``extra``: {captcha_id, captcha_answer}) as
   * long as the server asks for one; the last refusal is thrown when the person cancels. */
  async function withCaptcha(send) {
    let extra = {};
    for (;;) {
      try {
        return await send(extra);
      } catch (error) {
        const err = web.asError(error);
        const challenge = err.details && err.details.challenge;
        if (!challenge || (err.code !== "captcha.required" && err.code !== "captcha.wrong")) throw error;
        const answer = await askCaptcha(challenge, err.code === "captcha.wrong" ? err.messageZh : "");
        if (answer === null) throw error;
        extra = { captcha_id: challenge.challenge_id, captcha_answer: answer };
      }
    }
  }

  /** The captcha answer of ``extra`` as the headers a route without a body takes it in. */
  function captchaHeaders(extra) {
    if (!extra || !extra.captcha_id) return {};
    return { "X-Captcha-Id": extra.captcha_id, "X-Captcha-Answer": extra.captcha_answer };
  }

  web.$ = $;
  web.$$ = $$;
  web.h = h;
  web.clearErrors = clearErrors;
  web.clearOnInput = clearOnInput;
  web.showError = showError;
  web.refusal = refusal;
  web.busy = busy;
  web.notice = notice;
  web.smsButton = smsButton;
  web.maskPhone = maskPhone;
  web.maskId = maskId;
  web.maskName = maskName;
  web.chinaTime = chinaTime;
  web.router = router;
  web.withCaptcha = withCaptcha;
  web.captchaHeaders = captchaHeaders;
})((window.ChekaWeb = window.ChekaWeb || {}));
