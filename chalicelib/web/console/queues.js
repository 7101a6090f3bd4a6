/* The console's queues, one tab each: 人工审核 (the review cases: 人脸人工审核 and 人工实名认证, by their
 * reason), 企业批次 (fleet cases), 抽查 (the operators' spot checks) and 投诉举报 (complaints, answered
 * to the person before their deadline). Filters, SLA timers (time left to the deadline, red once past),
 * paging. A tab shows only to the roles its API answers. */

import {
  BATCH_KINDS,
  BATCH_STATUS,
  COMPLAINT_STATUS,
  FACE_REASONS,
  PURPOSES,
  REASONS,
  REVIEW_STATUS,
  SPOT_STATUS,
  STAGES,
  timer,
} from "./labels.js";

/** Which roles each tab serves (as the routes behind it allow). */
const TAB_ROLES = {
  review: ["reviewer"],
  fleet: ["reviewer", "review_lead", "admin", "auditor"],
  spot: ["reviewer", "auditor"],
  complaints: ["reviewer", "admin"],
};

export function queues(ctx) {
  const { web, call } = ctx;
  const { $, $$, h } = web;
  const cursors = { review: null, fleet: null, spot: null };
  const loaded = new Set();
  let tabs = [];

  // -------------------------------------------------------------------------------------------
  // Tabs

  function setup(roles) {
    tabs = Object.keys(TAB_ROLES).filter((t) => TAB_ROLES[t].some((r) => roles.includes(r)));
    for (const button of $$("#tabs [data-tab]")) button.hidden = !tabs.includes(button.dataset.tab);
    $("#queues").hidden = tabs.length === 0;
    $("#no-pages").hidden = tabs.length > 0;
    return tabs;
  }

  async function show(tab, reload) {
    if (!tabs.includes(tab)) tab = tabs[0];
    if (!tab) return;
    for (const button of $$("#tabs [data-tab]")) button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    for (const pane of $$("#queues .tab")) pane.hidden = pane.dataset.tab !== tab;
    if (reload || !loaded.has(tab)) {
      loaded.add(tab);
      await LOADERS[tab](true);
    }
  }

  function scopeOf(tab) {
    return $('#queues .tab[data-tab="' + tab + '"]');
  }

  function guarded(tab, work) {
    const scope = scopeOf(tab);
    web.clearErrors(scope);
    return work().catch((error) => web.showError(error, scope));
  }

  // -------------------------------------------------------------------------------------------
  // 人工审核: the review cases (the list #queue-list is the API's page, filtered by reason in the page)

  function reviewItem(c) {
    const group = FACE_REASONS.has(c.reason) ? "face" : "identity";
    return h(
      "li",
      { "data-case": c.case_id, "data-reason": c.reason, "data-group": group, tabindex: "0", role: "link" },
      h("div", { class: "head" }, "审核编号 " + c.case_number, h("span", { class: "badge", text: REVIEW_STATUS[c.status] || c.status })),
      h("div", { class: "meta", text: (PURPOSES[c.purpose] || c.purpose) + " · " + (REASONS[c.reason] || c.reason) }),
      h("div", { class: "meta" }, "提交于 " + web.chinaTime(c.created_at) + " · ", waited(c)),
    );
  }

  /** How long an open review case has waited (the owner was told one working day). */
  function waited(c) {
    if (c.status !== "open") return h("span", { text: c.decided_at ? "办结于 " + web.chinaTime(c.decided_at) : "" });
    const hours = (Date.now() - new Date(c.created_at).getTime()) / 3600000;
    return h("span", { class: hours > 24 ? "sla overdue" : "sla", text: "已等待 " + Math.max(0, Math.floor(hours)) + " 小时" });
  }

  function filterReviews() {
    const group = $("#review-group").value;
    const reason = $("#review-reason").value;
    let shown = 0;
    for (const li of $$("#queue-list li")) {
      const visible = (!group || li.dataset.group === group) && (!reason || li.dataset.reason === reason);
      li.hidden = !visible;
      if (visible) shown += 1;
    }
    const count = $$("#queue-list li").length;
    $("#queue-count").textContent = (group || reason ? shown + " / " : "") + (cursors.review ? count + "+" : String(count));
    $("#queue-empty").hidden = shown > 0;
  }

  async function loadReviews(first) {
    const status = $("#review-status").value;
    const more = !first && cursors.review ? "&cursor=" + encodeURIComponent(cursors.review) : "";
    const page = await call("GET", "/v1/review-cases?status=" + status + "&limit=20" + more);
    const list = $("#queue-list");
    if (first) list.replaceChildren();
    list.append(...page.cases.map(reviewItem));
    cursors.review = page.next_cursor;
    $("#queue-more").hidden = !cursors.review;
    filterReviews();
  }

  // -------------------------------------------------------------------------------------------
  // 企业批次

  function fleetItem(c) {
    const badges = [h("span", { class: "badge", text: BATCH_STATUS[c.status] || c.status })];
    if (c.stage) badges.push(h("span", { class: "badge wait", text: STAGES[c.stage] || c.stage }));
    if (c.escalated) badges.push(h("span", { class: "badge bad", text: "已升级" }));
    if (c.round > 1) badges.push(h("span", { class: "badge", text: "第 " + c.round + " 轮" }));
    return h(
      "li",
      { "data-batch": c.batch_id, tabindex: "0", role: "link" },
      h("div", { class: "head" }, c.company_name || c.uscc, ...badges),
      h("div", { class: "meta", text: (BATCH_KINDS[c.kind] || c.kind) + " · " + c.vehicles + " 辆 · " + c.uscc }),
      h(
        "div",
        { class: "meta" },
        c.submitted_at ? "提交于 " + web.chinaTime(c.submitted_at) + " · " : "",
        c.deadline_at ? "时限 " + web.chinaTime(c.deadline_at) + " · " : "",
        timer(h, c.deadline_at, c.overdue),
      ),
    );
  }

  function fleetQuery(first) {
    const q = new URLSearchParams();
    if ($("#fleet-status").value) q.set("status", $("#fleet-status").value);
    if ($("#fleet-stage").value) q.set("stage", $("#fleet-stage").value);
    if ($("#fleet-overdue").checked) q.set("overdue", "true");
    const uscc = $("#fleet-uscc").value.trim().toUpperCase();
    if (uscc) q.set("uscc", uscc);
    if (!first && cursors.fleet) q.set("cursor", cursors.fleet);
    const text = q.toString();
    return "/v1/fleet-cases" + (text ? "?" + text : "");
  }

  async function loadFleet(first) {
    const page = await call("GET", fleetQuery(first));
    const list = $("#fleet-list");
    if (first) list.replaceChildren();
    list.append(...(page.cases || page.items || []).map(fleetItem));
    cursors.fleet = page.next_cursor || null;
    $("#fleet-more").hidden = !cursors.fleet;
    $("#fleet-empty").hidden = list.children.length > 0;
  }

  // -------------------------------------------------------------------------------------------
  // 抽查

  function spotItem(c) {
    return h(
      "li",
      { "data-check": c.check_id, "data-overdue": c.overdue ? "1" : "", tabindex: "0", role: "link" },
      h("div", { class: "head" }, "抽查 " + c.iccid, h("span", { class: "badge", text: SPOT_STATUS[c.status] || c.status })),
      h("div", { class: "meta", text: (c.operator || "") + " · " + (c.reason_zh || c.reason_code || "运营商抽查") }),
      h(
        "div",
        { class: "meta" },
        "收到于 " + web.chinaTime(c.received_at) + " · 答复时限 " + web.chinaTime(c.due_at) + " · ",
        c.status === "open" ? timer(h, c.due_at, c.overdue) : h("span", { text: c.late ? "逾期答复" : "按时答复" }),
      ),
    );
  }

  async function loadSpot(first) {
    const more = !first && cursors.spot ? "&cursor=" + encodeURIComponent(cursors.spot) : "";
    const page = await call("GET", "/v1/spot-checks?status=" + $("#spot-status").value + "&limit=20" + more);
    const list = $("#spot-list");
    if (first) list.replaceChildren();
    list.append(...page.checks.map(spotItem));
    cursors.spot = page.next_cursor;
    $("#spot-more").hidden = !cursors.spot;
    const onlyLate = $("#spot-overdue").checked;
    for (const li of $$("#spot-list li")) li.hidden = onlyLate && li.dataset.overdue !== "1";
    $("#spot-empty").hidden = $$("#spot-list li:not([hidden])").length > 0;
  }

  // -------------------------------------------------------------------------------------------
  // 投诉举报: answered to the person (the answer reaches them in 我的投诉 and by SMS)

  function complaintItem(c) {
    const open = c.status !== "closed";
    const item = h(
      "li",
      { "data-complaint": c.complaint_id, "data-overdue": c.overdue ? "1" : "" },
      h(
        "div",
        { class: "head" },
        "投诉编号 " + c.complaint_id,
        h("span", { class: "badge", text: c.category_zh || c.category }),
        h("span", { class: open ? "badge wait" : "badge ok", text: COMPLAINT_STATUS[c.status] || c.status_zh }),
      ),
      h(
        "div",
        { class: "meta" },
        "提交于 " + web.chinaTime(c.created_at),
        c.due_at ? " · 答复时限 " + web.chinaTime(c.due_at) + " · " : "",
        open ? timer(h, c.due_at, c.overdue) : null,
      ),
      h("p", { class: "description", text: c.description }),
      h("div", { class: "meta", text: "联系电话 " + c.contact_phone + (c.vin ? " · 车辆 " + c.vin : "") }),
    );
    if (c.answer) {
      item.append(
        h("div", { class: "answer" }, h("strong", { text: "答复：" }), c.answer),
        h("div", { class: "meta", text: "答复于 " + web.chinaTime(c.answered_at) + (c.late ? "（逾期）" : "") }),
      );
    }
    if (open && ctx.roles.includes("reviewer")) item.append(answerForm(c));
    return item;
  }

  function answerForm(c) {
    const text = h("textarea", { rows: "3", maxlength: "500", "data-field": "answer", placeholder: "答复内容将通过短信和“我的投诉”告知投诉人" });
    const close = h("input", { type: "checkbox", checked: true });
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const button = h("button", { type: "button", class: "primary", text: "答复投诉人" });
    const form = h(
      "div",
      { class: "answer-form" },
      h("label", { class: "field" }, h("span", { text: "答复" }), text, h("em", { class: "field-error", hidden: true })),
      h("label", { class: "check" }, close, " 答复后办结"),
      error,
      button,
    );
    button.addEventListener("click", () =>
      web.busy(button, "正在提交…", form, async () => {
        await call("POST", "/v1/admin/complaints/" + encodeURIComponent(c.complaint_id) + "/answer", {
          answer: text.value,
          close: close.checked,
        });
        web.notice("已答复，投诉人将收到短信通知");
        await loadComplaints(true);
      }),
    );
    return form;
  }

  async function loadComplaints() {
    const page = await call("GET", "/v1/admin/complaints?status=" + $("#complaint-status").value + "&limit=50");
    const onlyLate = $("#complaint-overdue").checked;
    const shown = page.complaints.filter((c) => !onlyLate || c.overdue);
    $("#complaint-list").replaceChildren(...shown.map(complaintItem));
    $("#complaint-empty").hidden = shown.length > 0;
  }

  const LOADERS = { review: loadReviews, fleet: loadFleet, spot: loadSpot, complaints: loadComplaints };

  // -------------------------------------------------------------------------------------------
  // Wiring

  for (const [code, name] of Object.entries(REASONS)) $("#review-reason").append(h("option", { value: code, text: name }));
  $("#tabs").addEventListener("click", (event) => {
    const button = event.target.closest("[data-tab]");
    if (button) ctx.go("queues", button.dataset.tab);
  });
  $("#review-group").addEventListener("change", filterReviews);
  $("#review-reason").addEventListener("change", filterReviews);
  $("#review-status").addEventListener("change", () => guarded("review", () => loadReviews(true)));
  $("#queue-more").addEventListener("click", () => web.busy($("#queue-more"), "正在加载…", scopeOf("review"), () => loadReviews(false)));
  $("#fleet-apply").addEventListener("click", () => web.busy($("#fleet-apply"), "筛选中…", scopeOf("fleet"), () => loadFleet(true)));
  for (const id of ["#fleet-status", "#fleet-stage", "#fleet-overdue"]) {
    $(id).addEventListener("change", () => guarded("fleet", () => loadFleet(true)));
  }
  $("#fleet-more").addEventListener("click", () => web.busy($("#fleet-more"), "正在加载…", scopeOf("fleet"), () => loadFleet(false)));
  $("#spot-status").addEventListener("change", () => guarded("spot", () => loadSpot(true)));
  $("#spot-overdue").addEventListener("change", () => guarded("spot", () => loadSpot(true)));
  $("#spot-more").addEventListener("click", () => web.busy($("#spot-more"), "正在加载…", scopeOf("spot"), () => loadSpot(false)));
  $("#complaint-status").addEventListener("change", () => guarded("complaints", () => loadComplaints()));
  $("#complaint-overdue").addEventListener("change", () => guarded("complaints", () => loadComplaints()));

  // Opening a case: a click (or Enter) on its item.
  function opener(listId, attr, kind) {
    const list = $(listId);
    const open = (event) => {
      const li = event.target.closest("li[" + attr + "]");
      if (li) ctx.go(kind, li.getAttribute(attr));
    };
    list.addEventListener("click", open);
    list.addEventListener("keydown", (event) => {
      if (event.key === "Enter") open(event);
    });
  }
  opener("#queue-list", "data-case", "review");
  opener("#fleet-list", "data-batch", "fleet");
  opener("#spot-list", "data-check", "spot");

  return { setup, show, guarded, tabs: () => tabs };
}
