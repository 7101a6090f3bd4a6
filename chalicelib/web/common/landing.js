// The landing page (GET /): the demo vehicles, the SMS drop, health and the route list, read from the
// page's JSON data block and the API.
"use strict";

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
let landing = {};
try { landing = JSON.parse(document.getElementById("landing-data").textContent); } catch (e) { landing = {}; }
document.getElementById("stage").textContent = landing.stage ? `stage ${landing.stage}` : "";

const vinItem = (vin, openOne) => {
  const links = [`<a href="/h5">去 H5 ${openOne ? "登记" : "查看"}</a>`];
  if (openOne && landing.head_unit) links.push(`<a href="/v1/dev/head-unit/${encodeURIComponent(vin)}">车机验证码</a>`);
  return `<li><div class="vin">${esc(vin)}</div><div class="links">${links.join("")}</div></li>`;
};
if (landing.demo) {
  const demo = landing.demo;
  document.getElementById("demo").hidden = false;
  document.getElementById("link-demo").hidden = false;
  document.getElementById("open-vins").innerHTML = (demo.open_vins || []).map((v) => vinItem(v, true)).join("");
  document.getElementById("registered-vins").innerHTML = (demo.registered_vins || []).map((v) => vinItem(v, false)).join("");
  document.getElementById("registered-title").hidden = !(demo.registered_vins || []).length;
  document.getElementById("no-demo").hidden = (demo.open_vins || []).length + (demo.registered_vins || []).length > 0;
}

const smsTime = (iso) => {
  const d = new Date(iso);
  // China time, to the minute: 2026-11-29 20:15 (the Swedish locale writes ISO-like dates)
  return isNaN(d) ? "" : d.toLocaleString("sv-SE", {timeZone: "Asia/Shanghai", hour12: false}).slice(0, 16);
};
const loadSms = () => fetch("/v1/dev/sms-drop?limit=5").then((r) => r.json()).then((doc) => {
  const items = doc.messages || [];
  document.getElementById("sms-list").innerHTML = items.length
    ? items.map((m) => `<li><div><strong>${esc(m.phone)}</strong> <span class="muted">${esc(smsTime(m.sent_at))}</span></div><div>${esc(m.text)}</div></li>`).join("")
    : `<li class="muted">还没有短信。车主在 H5 获取验证码后，会出现在这里。</li>`;
}).catch(() => {
  document.getElementById("sms-list").innerHTML = `<li class="bad">短信发件箱读取失败，请稍后刷新。</li>`;
});
if (landing.sms_drop) {
  document.getElementById("sms").hidden = false;
  document.getElementById("link-sms").hidden = false;
  document.getElementById("sms-refresh").addEventListener("click", loadSms);
  loadSms();
}

fetch("/health").then((r) => r.json()).then((h) => {
  const rows = [`<div class="health-row"><span>整体 overall</span><span class="${h.status === "ok" ? "ok" : "bad"}">${esc(h.status)}</span></div>`];
  for (const [name, c] of Object.entries(h.checks || {})) {
    rows.push(`<div class="health-row"><span>${esc(name)}</span><span class="${c.ok ? "ok" : "bad"}">${c.ok ? `ok · ${c.ms} ms` : esc(c.error)}</span></div>`);
  }
  if (!h.checks) rows.push(`<p class="muted">各依赖的详情需管理员令牌（GET /health）。</p>`);
  document.getElementById("health").innerHTML = rows.join("");
}).catch(() => { document.getElementById("health").innerHTML = `<span class="bad">无法读取 /health</span>`; });

fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const rows = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      rows.push(`<li class="route"><code>${method.toUpperCase()}</code><code>${esc(path)}</code><span class="muted">${esc((op["x-roles"] || ["public"]).join(", "))}</span><span class="what">${esc(op.summary)}</span></li>`);
    }
  }
  document.getElementById("routes").innerHTML = rows.join("");
});
