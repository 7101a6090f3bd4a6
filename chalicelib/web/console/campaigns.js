/* The console's backfill campaigns (补登记活动, 第二十二条): the list of campaigns with 暂停 / 恢复 / 停止, the
 * form that creates one (the message template's length counted live, against the SMS limit, with the
 * message as an owner would read it), a campaign's page — its waves in China time (已顺延 when quiet
 * hours moved one), 立即执行 for a wave still waiting, the progress of each wave drawn as stacked bars in
 * inline SVG (refreshed every few seconds while a wave is under way) — and the call list: the cards a
 * message could not reach, their outcomes recorded back, exported as CSV with a reason (read log).
 * Routes: #/campaigns, #/campaign/<campaign id>. Admin and operations write; an auditor reads; the call
 * centre sees the call list only. */

/** Who sees what (as the routes behind it allow). */
const WRITE_ROLES = ["admin", "operations"];
const READ_ROLES = ["admin", "operations", "auditor"];
const CALL_ROLES = ["call_centre", "admin", "operations", "auditor"];
const OUTCOME_ROLES = ["call_centre", "admin", "operations"];
const EXPORT_ROLES = ["call_centre", "admin"];

export const CAMPAIGN_STATUS = { active: "进行中", paused: "已暂停", stopped: "已停止", completed: "已完成" };
export const WAVE_STATUS = {
  scheduled: "待执行",
  running: "执行中",
  planned: "已全部排队",
  missed: "已错过",
  cancelled: "已取消",
};
export const CHANNELS = { sms: "短信", call: "电话" };
export const SKIP_REASONS = {
  registered: "已登记",
  not_in_service: "已不在用",
  opted_out: "已退订",
  no_phone: "无联系电话",
  superseded: "已由后续轮次接替",
  stopped: "活动已停止",
};
export const CALL_REASONS = { send_failed: "短信发送失败", no_phone: "无联系电话", unconfirmed: "发送结果未确认" };
export const CALL_OUTCOMES = {
  reached: "已联系，车主将办理",
  no_answer: "无人接听",
  wrong_number: "号码错误",
  declined: "车主拒绝",
  registered: "已完成登记",
};

/** The parts of a wave's bar: what the wave did with its targets (one bar), and what followed (another). */
const PART_COLOURS = {
  sent: "#1a7f37",
  failed: "#b42318",
  pending: "#e4e7eb",
  registered: "#134a8e",
  called: "#b54708",
};
const SKIP_COLOURS = {
  registered: "#8fb8ea",
  not_in_service: "#b8c4d0",
  opted_out: "#a77fc5",
  no_phone: "#f0b429",
  superseded: "#9aa5b1",
  stopped: "#616e7c",
};
const PART_NAMES = { sent: "已发送", failed: "发送失败", pending: "待处理", registered: "已登记（归因）", called: "已外呼" };

/** What a new campaign starts with; the message must carry the VIN's tail and the link. */
const DEFAULT_TEMPLATE =
  "【车联网卡实名登记】尊敬的车主，您尾号{vin_tail}的车辆所用车联网卡尚未实名登记，请于{deadline}前完成登记：{link}";
const DEFAULT_WAVES = "60,30,7,1";
/** What the server appends to every campaign SMS (domain.OPT_OUT_SUFFIX), counted in the limit. */
const OPT_OUT_SUFFIX = " 回TD退订";
/** The most characters of a campaign SMS (two segments), unless the API says otherwise. */
const MAX_CHARS = 134;
const SAMPLE_VIN_TAIL = "184847";
/** The deadline a template is measured with (the widest a message can show: 2099年12月31日). */
const WIDEST_DEADLINE = "2099-12-31";
const REFRESH_MS = 3000;

/** The SVG namespace, as the HTML parser gives an <svg> element (no address in the page's files). */
const SVG = (() => {
  const box = document.createElement("div");
  box.innerHTML = "<svg></svg>";
  return box.firstChild.namespaceURI;
})();

export function campaigns(ctx) {
  const { web, call } = ctx;
  const { $, $$, h } = web;
  const state = {
    cursor: null, // the list's next page
    campaign: null, // the campaign shown
    progress: null,
    callCursor: null,
    timer: 0,
    ticking: false, // a refresh in flight (the next tick waits for it)
    opened: 0, // which open() is the latest: an earlier one's late answers are dropped
    troubled: -1, // failed + no phone + unconfirmed, when the call list was last read
    link: null,
    maxChars: MAX_CHARS,
  };

  const has = (list) => ctx.roles.some((r) => list.includes(r));
  const canWrite = () => has(WRITE_ROLES);
  const canRead = () => has(READ_ROLES);

  /** Whether the signed-in staff member has this page at all. */
  function allowed(roles) {
    return roles.some((r) => READ_ROLES.includes(r) || CALL_ROLES.includes(r));
  }

  function listScope() {
    return $('section[data-screen="campaigns"]');
  }

  function pageScope() {
    return $('section[data-screen="campaign"]');
  }

  function messageLink() {
    return state.link || location.origin + ctx.root() + "/h5/";
  }

  // -------------------------------------------------------------------------------------------
  // The list

  function actionButtons(c, after) {
    if (!canWrite()) return [];
    const buttons = [];
    const act = (verb, label, doing, question, done) => {
      const button = h("button", {
        type: "button",
        class: verb === "stop" ? "secondary danger" : "secondary",
        "data-action": verb,
        "aria-label": label + "活动“" + c.name + "”",
        text: label,
      });
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        if (question && !window.confirm(question)) return;
        const scope = button.closest("section");
        web.busy(button, doing, scope, async () => {
          const saved = await call("POST", "/v1/campaigns/" + encodeURIComponent(c.campaign_id) + "/" + verb);
          web.notice(done);
          await after(saved);
        });
      });
      buttons.push(button);
    };
    if (c.status === "active") act("pause", "暂停", "正在暂停…", null, "活动已暂停，恢复前不再发送");
    if (c.status === "paused") act("resume", "恢复", "正在恢复…", null, "活动已恢复");
    if (c.status === "active" || c.status === "paused") {
      act("stop", "停止", "正在停止…", "停止后，尚未执行的轮次将取消、已排队的短信不再发送，且无法恢复。确定停止“" + c.name + "”？", "活动已停止");
    }
    return buttons;
  }

  function statusBadge(status) {
    const cls = status === "active" ? "badge ok" : status === "paused" ? "badge wait" : status === "stopped" ? "badge bad" : "badge";
    return h("span", { class: cls, "data-status": status, text: CAMPAIGN_STATUS[status] || status });
  }

  function campaignItem(c) {
    const item = h(
      "li",
      { "data-campaign": c.campaign_id },
      h("div", { class: "head" }, h("a", { href: "#/campaign/" + encodeURIComponent(c.campaign_id), class: "name", text: c.name }), statusBadge(c.status)),
      h(
        "div",
        { class: "meta", text: "截止 " + c.deadline + " · " + (c.current_wave ? "当前第 " + c.current_wave + " 轮" : "尚未开始") + " · 创建于 " + web.chinaTime(c.created_at) },
      ),
    );
    const buttons = actionButtons(c, () => loadList(true));
    if (buttons.length) item.append(h("div", { class: "actions" }, ...buttons));
    return item;
  }

  async function loadList(first) {
    const more = !first && state.cursor ? "?cursor=" + encodeURIComponent(state.cursor) : "";
    const page = await call("GET", "/v1/campaigns" + more);
    const list = $("#campaign-list");
    if (first) list.replaceChildren();
    list.append(...(page.campaigns || page.items || []).map(campaignItem));
    state.cursor = page.next_cursor || null;
    $("#campaign-more").hidden = !state.cursor;
    $("#campaign-empty").hidden = list.children.length > 0;
    if (first && list.children.length === 0 && $("#campaign-create")) $("#campaign-create").open = true;
  }

  async function showList() {
    stopRefresh();
    const scope = listScope();
    web.clearErrors(scope);
    const body = $("#campaigns-body");
    // The call centre lists the campaigns too (names, deadlines, states): a campaign's page shows it
    // the call list only.
    body.replaceChildren(
      canWrite() ? createForm() : null,
      h("h3", { text: "活动列表" }),
      h("p", { class: "hint", id: "campaign-empty", hidden: true, text: "还没有补登记活动。" }),
      h("ol", { class: "cases", id: "campaign-list" }),
      h("button", { type: "button", class: "secondary block", id: "campaign-more", hidden: true, text: "加载更多" }),
    );
    $("#campaign-more").addEventListener("click", () => web.busy($("#campaign-more"), "正在加载…", scope, () => loadList(false)));
    // The name is the link (keyboard and screen readers); a click anywhere else on the item opens it too.
    $("#campaign-list").addEventListener("click", (event) => {
      if (event.target.closest("button, a")) return;
      const li = event.target.closest("li[data-campaign]");
      if (li) ctx.go("campaign", li.dataset.campaign);
    });
    try {
      await loadList(true);
    } catch (error) {
      if (web.asError(error).status !== 401) web.showError(error, scope);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The create form

  function field(name, label, input, note) {
    input.setAttribute("data-field", name);
    if (!input.id) input.id = "create-" + name.replace(/_/g, "-"); // the form's ids: create-<field>
    return h(
      "div",
      { class: "field" },
      h("label", { for: input.id, text: label }),
      input,
      note || null,
      h("em", { class: "field-error", hidden: true }),
    );
  }

  function chinaToday(plusDays) {
    const d = new Date(Date.now() + 8 * 3600 * 1000 + (plusDays || 0) * 86400 * 1000);
    return d.toISOString().slice(0, 10);
  }

  /** The deadline as the message shows it (2027年3月1日). */
  function deadlineText(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    return m ? Number(m[1]) + "年" + Number(m[2]) + "月" + Number(m[3]) + "日" : "YYYY年M月D日";
  }

  /** The message an owner would read (the server fills it the same way and appends the opt-out note). */
  function rendered(template, deadline) {
    return (
      template
        .split("{vin_tail}")
        .join(SAMPLE_VIN_TAIL)
        .split("{link}")
        .join(messageLink())
        .split("{deadline}")
        .join(deadlineText(deadline)) + OPT_OUT_SUFFIX
    );
  }

  function createForm() {
    const name = h("input", { maxlength: "64", autocomplete: "off", required: true });
    const deadline = h("input", { type: "date", required: true, value: chinaToday(90), min: chinaToday(1) });
    const waves = h("input", { value: DEFAULT_WAVES, inputmode: "numeric", autocomplete: "off", "aria-describedby": "create-waves-note" });
    const template = h("textarea", { rows: "4", maxlength: "500", "aria-describedby": "create-count create-preview" });
    template.value = DEFAULT_TEMPLATE;
    const count = h("span", { class: "field-note count", id: "create-count", "aria-live": "polite" });
    const preview = h("p", { class: "preview", id: "create-preview" });
    const sms = h("input", { type: "checkbox", name: "channels", value: "sms", checked: true });
    const phone = h("input", { type: "checkbox", name: "channels", value: "call", checked: true });
    const channels = h("div", { class: "choices", "data-field": "channels", id: "create-channels" }, h("label", {}, sms, "短信"), h("label", {}, phone, "电话（外呼名单）"));
    const rate = h("input", { type: "number", min: "1", max: "500", step: "1", value: "50", inputmode: "numeric" });
    const sendTime = h("input", { type: "time", value: "10:00", required: true });
    const quietStart = h("input", { type: "time", value: "21:00", "data-field": "quiet_start", id: "create-quiet-start", "aria-label": "免打扰开始时间（北京时间）" });
    const quietEnd = h("input", { type: "time", value: "08:00", "data-field": "quiet_end", id: "create-quiet-end", "aria-label": "免打扰结束时间（北京时间）" });
    const attribution = h("input", { type: "number", min: "1", max: "90", step: "1", value: "14", inputmode: "numeric" });
    const estimate = h("p", { class: "hint", id: "create-targets" });
    const submit = h("button", { type: "button", class: "primary", id: "campaign-create-submit", text: "创建活动" });
    const error = h("p", { class: "error", role: "alert", hidden: true });

    function recount() {
      const text = rendered(template.value, deadline.value);
      // Counted as the server counts it: with the widest deadline a message can show.
      const length = Array.from(rendered(template.value, WIDEST_DEADLINE)).length;
      const over = length > state.maxChars;
      count.textContent = "短信字数：" + length + " / " + state.maxChars + "（含退订提示）" + (over ? "，超出 " + (length - state.maxChars) + " 字" : "");
      count.classList.toggle("over", over);
      const missing = [];
      if (!template.value.includes("{link}")) missing.push("{link}（登记链接）");
      if (!template.value.includes("{vin_tail}")) missing.push("{vin_tail}（车架号后 6 位）");
      preview.replaceChildren(
        h("strong", { text: "短信预览：" }),
        text,
        missing.length ? h("span", { class: "missing", text: "　缺少 " + missing.join("、") }) : null,
      );
    }
    template.addEventListener("input", recount);
    deadline.addEventListener("input", recount);

    // Folded away once there are campaigns (the list comes first then); open while there are none.
    const form = h(
      "details",
      { class: "campaign-form", id: "campaign-create" },
      h("summary", { text: "新建补登记活动" }),
      h("p", { class: "hint", text: "按截止日期前的天数分轮发送；每张卡每轮至多一条短信，免打扰时段内不发送（顺延至时段结束）。" }),
      error,
      field("name", "活动名称", name),
      h(
        "div",
        { class: "form-row" },
        field("deadline", "登记截止日期", deadline),
        field("waves", "发送轮次（截止日前天数）", waves, h("span", { class: "field-note", id: "create-waves-note", text: "用逗号分隔，如 60,30,7,1" })),
      ),
      field(
        "template",
        "短信模板",
        template,
        h("span", { class: "field-note", text: "可用占位符：{vin_tail} 车架号后 6 位（必填），{link} 登记链接（必填），{deadline} 截止日期" }),
      ),
      count,
      preview,
      h("fieldset", { class: "field" }, h("legend", { text: "通知渠道" }), channels, h("em", { class: "field-error", hidden: true })),
      h(
        "div",
        { class: "form-row" },
        field("rate_per_second", "发送速率（条/秒）", rate, h("span", { class: "field-note", text: "1–500，整个活动合计" })),
        field("send_time", "每轮发送时间（北京时间）", sendTime),
        field("attribution_days", "归因期（天）", attribution, h("span", { class: "field-note", text: "短信发出后此期限内完成登记，计入该轮成效" })),
      ),
      h(
        "fieldset",
        { class: "field" },
        h("legend", { text: "免打扰时段（北京时间）" }),
        h("div", { class: "input-row quiet", "data-field": "quiet_hours" }, quietStart, h("span", { text: "至" }), quietEnd),
        h("em", { class: "field-error", hidden: true }),
      ),
      estimate,
      submit,
    );
    web.clearOnInput(form);
    recount();

    // The plan's estimate: how many cards are targets now (and the API's message limits, when it says).
    call("GET", "/v1/campaigns/targets/count")
      .then((doc) => {
        const n = doc && (doc.count ?? doc.targets ?? doc.estimate);
        if (doc && doc.link) state.link = doc.link;
        if (doc && doc.max_chars) state.maxChars = doc.max_chars;
        if (n !== undefined && n !== null) estimate.textContent = "当前待补登记的卡约 " + n + " 张（在用、未登记、未退订）。";
        recount();
      })
      .catch(() => {});

    submit.addEventListener("click", () =>
      web.busy(submit, "正在创建…", form, async () => {
        const days = waves.value.split(/[,，、\s]+/).filter(Boolean);
        if (!days.length || days.some((d) => !/^\d{1,3}$/.test(d))) {
          throw web.refusal("waves", "请填写截止日前的天数，用逗号分隔，如 60,30,7,1");
        }
        const chosen = $$('input[name="channels"]:checked', form).map((c) => c.value);
        if (!chosen.length) throw web.refusal("channels", "请至少选择一个通知渠道");
        const body = {
          name: name.value.trim(),
          deadline: deadline.value,
          waves: days.map(Number),
          template: template.value,
          channels: chosen,
          rate_per_second: Number(rate.value),
          send_time: sendTime.value,
          quiet_hours: { start: quietStart.value, end: quietEnd.value },
          attribution_days: Number(attribution.value),
        };
        let created;
        try {
          created = await call("POST", "/v1/campaigns", body);
        } catch (error) {
          throw byField(error);
        }
        web.notice("已创建活动“" + created.name + "”，各轮已排期");
        ctx.go("campaign", created.campaign_id);
      }),
    );
    return form;
  }

  /** The API names fields by their path (quiet_hours.start, waves.2): each is shown beside its input. */
  function byField(error) {
    const err = web.asError(error);
    const name = (path) => {
      if (!path) return path;
      const parts = String(path).split(".");
      if (parts[0] === "body") parts.shift();
      return parts[0];
    };
    err.field = name(err.field);
    if (err.details && Array.isArray(err.details.errors)) {
      err.details = { ...err.details, errors: err.details.errors.map((e) => ({ ...e, field: name(e.field) })) };
    }
    return err;
  }

  // -------------------------------------------------------------------------------------------
  // A campaign's page

  async function open(campaignId) {
    stopRefresh();
    const opened = ++state.opened;
    state.campaign = null;
    state.progress = null;
    state.troubled = -1;
    const scope = pageScope();
    web.clearErrors(scope);
    $("#campaign-title").textContent = "补登记活动";
    $("#campaign-sub").replaceChildren();
    const body = $("#campaign-body");
    body.replaceChildren();
    try {
      if (canRead()) {
        const [campaign, progress] = await Promise.all([
          call("GET", "/v1/campaigns/" + encodeURIComponent(campaignId)),
          call("GET", "/v1/campaigns/" + encodeURIComponent(campaignId) + "/progress"),
        ]);
        if (opened !== state.opened) return; // another campaign was opened meanwhile
        state.campaign = campaign;
        state.progress = progress;
        body.append(
          h("div", { id: "campaign-facts" }),
          h("h3", { text: "发送轮次" }),
          h("div", { id: "campaign-waves" }),
          h("h3", { text: "发送进度" }),
          h("div", { id: "campaign-progress" }),
        );
        drawCampaign();
        drawProgress();
      } else {
        $("#campaign-title").textContent = "外呼名单 · " + campaignId;
      }
      if (has(CALL_ROLES)) {
        body.append(callSection(campaignId));
        await loadCalls(true);
      }
      startRefresh(campaignId);
    } catch (error) {
      if (web.asError(error).status !== 401) web.showError(error, scope);
    }
  }

  function drawCampaign() {
    const c = state.campaign;
    $("#campaign-title").textContent = c.name;
    $("#campaign-sub").replaceChildren(statusBadge(c.status), " 截止 " + c.deadline + " · " + (c.current_wave ? "当前第 " + c.current_wave + " 轮" : "尚未开始"));
    const quiet = c.quiet_hours || {};
    const buttons = actionButtons(c, async (saved) => {
      state.campaign = saved && saved.campaign_id ? saved : await call("GET", "/v1/campaigns/" + encodeURIComponent(c.campaign_id));
      drawCampaign();
      startRefresh(c.campaign_id);
    });
    $("#campaign-facts").replaceChildren(
      h(
        "dl",
        { class: "rows" },
        h("div", {}, h("dt", { text: "通知渠道" }), h("dd", { text: (c.channels || []).map((x) => CHANNELS[x] || x).join("、") })),
        h("div", {}, h("dt", { text: "发送速率" }), h("dd", { text: c.rate_per_second + " 条/秒" })),
        h("div", {}, h("dt", { text: "发送时间" }), h("dd", { text: "每轮 " + c.send_time + "（北京时间）" })),
        h("div", {}, h("dt", { text: "免打扰时段" }), h("dd", { text: (quiet.start || "21:00") + "–" + (quiet.end || "08:00") + "（北京时间）" })),
        h("div", {}, h("dt", { text: "登记归因" }), h("dd", { text: "短信发出后 " + c.attribution_days + " 天内" })),
        h("div", {}, h("dt", { text: "短信模板" }), h("dd", { class: "template", text: c.template })),
        h("div", {}, h("dt", { text: "创建时间" }), h("dd", { text: web.chinaTime(c.created_at) })),
      ),
      buttons.length ? h("div", { class: "actions" }, ...buttons) : null,
    );
    $("#campaign-waves").replaceChildren(wavesTable(c));
  }

  function wavesTable(c) {
    const rows = (c.waves || []).map((w) => {
      const status = h("td", {}, h("span", { class: w.status === "running" ? "badge wait" : w.status === "planned" ? "badge ok" : "badge", text: WAVE_STATUS[w.status] || w.status }));
      if (w.deferred) status.append(" ", h("span", { class: "badge wait", title: "计划时间在免打扰时段内，已顺延至时段结束", text: "已顺延" }));
      if (w.started_at) status.append(h("div", { class: "small muted", text: "开始于 " + web.chinaTime(w.started_at) }));
      const action = h("td", {});
      if (canWrite() && w.status === "scheduled" && c.status === "active") {
        const button = h("button", { type: "button", class: "secondary run-wave", "data-wave": String(w.index), "aria-label": "立即执行第 " + w.index + " 轮", text: "立即执行" });
        button.addEventListener("click", () => {
          if (!window.confirm("立即执行第 " + w.index + " 轮？将按当前名单向所有待补登记的卡发送短信（免打扰时段内顺延）。")) return;
          web.busy(button, "正在启动…", pageScope(), async () => {
            await call("POST", "/v1/campaigns/" + encodeURIComponent(c.campaign_id) + "/waves/" + w.index + "/run");
            web.notice("第 " + w.index + " 轮已开始执行");
            state.campaign = await call("GET", "/v1/campaigns/" + encodeURIComponent(c.campaign_id));
            drawCampaign();
            startRefresh(c.campaign_id);
          });
        });
        action.append(button);
      }
      return h(
        "tr",
        { "data-wave": String(w.index), "data-status": w.status },
        h("td", {}, "第 " + w.index + " 轮", h("div", { class: "small muted", text: "截止前 " + w.days_before + " 天" })),
        h("td", { class: "when", text: web.chinaTime(w.scheduled_at) }),
        status,
        action,
      );
    });
    const table = h(
      "table",
      { class: "readings waves" },
      h("caption", { class: "visually-hidden", text: "发送轮次（时间均为北京时间）" }),
      h(
        "thead",
        {},
        h("tr", {}, ...["轮次", "计划时间（北京时间）", "状态", "操作"].map((t) => h("th", { scope: "col", text: t }))),
      ),
      h("tbody", {}, ...rows),
    );
    return h("div", { class: "table-scroll" }, table);
  }

  // -------------------------------------------------------------------------------------------
  // Progress: per wave, a bar of what the wave did with its targets and a bar of what followed

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function skippedTotal(p) {
    return Object.values(p.skipped || {}).reduce((a, b) => a + Number(b || 0), 0);
  }

  /** The segments of one wave's bars: [{part, reason?, label, count, colour}]. */
  function segments(p) {
    const handled = (p.sent || 0) + skippedTotal(p) + (p.failed || 0);
    const main = [{ part: "sent", label: PART_NAMES.sent, count: p.sent || 0, colour: PART_COLOURS.sent }];
    for (const [reason, n] of Object.entries(p.skipped || {})) {
      if (!n) continue;
      main.push({ part: "skipped", reason, label: "跳过·" + (SKIP_REASONS[reason] || reason), count: n, colour: SKIP_COLOURS[reason] || "#9aa5b1" });
    }
    main.push({ part: "failed", label: PART_NAMES.failed, count: p.failed || 0, colour: PART_COLOURS.failed });
    main.push({ part: "pending", label: PART_NAMES.pending, count: Math.max(0, (p.targeted || 0) - handled), colour: PART_COLOURS.pending });
    const after = [
      { part: "registered", label: PART_NAMES.registered, count: p.registered || 0, colour: PART_COLOURS.registered },
      { part: "called", label: PART_NAMES.called, count: p.called || 0, colour: PART_COLOURS.called },
    ];
    return { main, after, scale: Math.max(p.targeted || 0, handled, 1) };
  }

  function bar(parts, y, height, scale, x0, width) {
    const group = s("g", {});
    let x = x0;
    group.append(s("rect", { x: x0, y, width, height, fill: "#f5f7fa", stroke: "#cbd2d9", "stroke-width": 0.5 }));
    for (const seg of parts) {
      if (!seg.count) continue;
      const w = (seg.count / scale) * width;
      const rect = s("rect", { x, y, width: Math.max(w, 1), height, fill: seg.colour, "data-part": seg.part, "data-count": seg.count });
      if (seg.reason) rect.setAttribute("data-reason", seg.reason);
      rect.append(s("title", {}, document.createTextNode(seg.label + " " + seg.count)));
      group.append(rect);
      x += w;
    }
    return group;
  }

  function waveChart(p) {
    const { main, after, scale } = segments(p);
    const width = 600;
    const x0 = 0;
    const summary =
      "第 " + p.wave + " 轮：目标 " + (p.targeted || 0) + "，" + main.filter((m) => m.count).map((m) => m.label + " " + m.count).join("，") +
      "；已登记 " + (p.registered || 0) + "，已外呼 " + (p.called || 0);
    const svg = s(
      "svg",
      { viewBox: "0 0 " + width + " 40", width: "100%", height: "40", preserveAspectRatio: "none", role: "img", "aria-label": summary, class: "chart", "data-wave": p.wave },
      bar(main, 2, 22, scale, x0, width),
      bar(after, 28, 10, scale, x0, width),
    );
    const numbers = [
      "目标 " + (p.targeted || 0),
      "已发送 " + (p.sent || 0),
      "跳过 " + skippedTotal(p),
      "失败 " + (p.failed || 0),
      "已外呼 " + (p.called || 0),
      "已登记 " + (p.registered || 0),
    ];
    if (p.deferred) numbers.push("因免打扰顺延 " + p.deferred + " 次");
    return h(
      "div",
      { class: "wave-progress", "data-wave": String(p.wave) },
      h("div", { class: "head" }, h("strong", { text: "第 " + p.wave + " 轮" }), " ", h("span", { class: "badge", text: WAVE_STATUS[p.status] || p.status || "" })),
      svg,
      h("div", { class: "meta numbers", text: numbers.join(" · ") }),
    );
  }

  function legend(progress) {
    const reasons = new Set();
    for (const p of progress.waves || []) for (const [r, n] of Object.entries(p.skipped || {})) if (n) reasons.add(r);
    const items = [
      ["sent", PART_NAMES.sent, PART_COLOURS.sent],
      ...Array.from(reasons).map((r) => ["skipped", "跳过·" + (SKIP_REASONS[r] || r), SKIP_COLOURS[r] || "#9aa5b1"]),
      ["failed", PART_NAMES.failed, PART_COLOURS.failed],
      ["pending", PART_NAMES.pending, PART_COLOURS.pending],
      ["registered", PART_NAMES.registered, PART_COLOURS.registered],
      ["called", PART_NAMES.called, PART_COLOURS.called],
    ];
    return h(
      "ul",
      { class: "legend", "aria-label": "图例" },
      ...items.map(([part, label, colour]) => h("li", { "data-part": part }, h("span", { class: "swatch", style: "background:" + colour, "aria-hidden": "true" }), label)),
    );
  }

  function drawProgress() {
    const box = $("#campaign-progress");
    if (!box) return;
    const progress = state.progress || { waves: [] };
    const started = (progress.waves || []).filter((p) => p.targeted || p.sent || skippedTotal(p) || p.failed || (p.status && p.status !== "scheduled" && p.status !== "missed" && p.status !== "cancelled"));
    if (!started.length) {
      box.replaceChildren(h("p", { class: "hint", id: "progress-empty", text: "尚无轮次开始执行。" }));
      return;
    }
    const t = progress.totals || {};
    box.replaceChildren(
      h("p", { class: "hint", text: "每轮上方条为目标卡的处理情况（总长为目标数），下方细条为短信发出后的登记与外呼。" }),
      legend(progress),
      ...started.map(waveChart),
      h(
        "p",
        { class: "meta totals" },
        "合计：目标 " + (t.targeted || 0) + " · 已发送 " + (t.sent || 0) + " · 跳过 " + skippedTotal(t) + " · 失败 " + (t.failed || 0) + " · 已外呼 " + (t.called || 0) + " · 已登记 " + (t.registered || 0),
      ),
    );
  }

  /** Whether a wave is still under way: started and not every target handled yet. */
  function underWay() {
    const c = state.campaign;
    if (!c || c.status === "stopped") return false;
    if ((c.waves || []).some((w) => w.status === "running")) return true;
    return ((state.progress && state.progress.waves) || []).some(
      (p) => (p.targeted || 0) > (p.sent || 0) + skippedTotal(p) + (p.failed || 0),
    );
  }

  /** The sends that put a card on the call list (a change means new entries to show). */
  function troubled(progress) {
    const t = (progress && progress.totals) || {};
    return (t.failed || 0) + ((t.skipped || {}).no_phone || 0);
  }

  function startRefresh(campaignId) {
    stopRefresh();
    if (!canRead()) return;
    state.timer = setInterval(async () => {
      const here = document.body.dataset.screen === "campaign" && state.campaign && state.campaign.campaign_id === campaignId;
      if (!here) return stopRefresh();
      if (!underWay()) return stopRefresh();
      if (state.ticking) return;
      state.ticking = true;
      try {
        const id = encodeURIComponent(campaignId);
        const [campaign, progress] = await Promise.all([call("GET", "/v1/campaigns/" + id), call("GET", "/v1/campaigns/" + id + "/progress")]);
        if (!state.campaign || state.campaign.campaign_id !== campaignId) return;
        const changed = JSON.stringify(campaign.waves) !== JSON.stringify(state.campaign.waves) || campaign.status !== state.campaign.status;
        state.campaign = campaign;
        state.progress = progress;
        if (changed) drawCampaign();
        drawProgress();
        if (troubled(progress) !== state.troubled && !callsBusy()) await loadCalls(true);
      } catch (_) {
        // A refresh that fails is tried again at the next tick (a refusal shows on the next action).
      } finally {
        state.ticking = false;
      }
    }, REFRESH_MS);
  }

  function stopRefresh() {
    if (state.timer) clearInterval(state.timer);
    state.timer = 0;
  }

  // -------------------------------------------------------------------------------------------
  // The call list

  function callSection(campaignId) {
    const waveSelect = h("select", { id: "calls-wave" }, h("option", { value: "", text: "全部轮次" }));
    for (const w of (state.campaign && state.campaign.waves) || []) waveSelect.append(h("option", { value: String(w.index), text: "第 " + w.index + " 轮" }));
    const openOnly = h("input", { type: "checkbox", id: "calls-open", checked: true });
    const refresh = h("button", { type: "button", class: "secondary", id: "calls-refresh", text: "刷新" });
    const section = h(
      "div",
      { class: "calls", id: "campaign-calls", "data-campaign": campaignId },
      h("h3", { text: "外呼名单" }),
      h("p", { class: "hint", text: "短信发送失败或没有联系电话的卡，由呼叫中心电话联系；联系电话脱敏显示。" }),
      h("div", { class: "filters" }, h("label", {}, "轮次", waveSelect), h("label", { class: "check" }, openOnly, "仅看未处理"), refresh),
      h("p", { class: "error", role: "alert", hidden: true }),
      h("p", { class: "hint", id: "calls-empty", hidden: true, text: "暂无需要外呼的卡。" }),
      h("ol", { class: "cases", id: "calls-list" }),
      h("button", { type: "button", class: "secondary block", id: "calls-more", hidden: true, text: "加载更多" }),
    );
    if (has(EXPORT_ROLES)) section.append(exportBar(campaignId));
    const reload = () => guardedCalls(() => loadCalls(true));
    waveSelect.addEventListener("change", reload);
    openOnly.addEventListener("change", reload);
    refresh.addEventListener("click", () => web.busy(refresh, "刷新中…", section, () => loadCalls(true)));
    section.querySelector("#calls-more").addEventListener("click", (event) => web.busy(event.target, "正在加载…", section, () => loadCalls(false)));
    return section;
  }

  function guardedCalls(work) {
    const section = $("#campaign-calls");
    web.clearErrors(section);
    return work().catch((error) => web.showError(error, section));
  }

  /** Whether someone is filling in an outcome (a refresh would lose it). */
  function callsBusy() {
    const list = $("#calls-list");
    if (!list) return true;
    if (list.contains(document.activeElement)) return true;
    return $$("textarea, select", list).some((el) => el.dataset.dirty === "1");
  }

  async function loadCalls(first) {
    const section = $("#campaign-calls");
    if (!section) return;
    const q = new URLSearchParams();
    if ($("#calls-wave").value) q.set("wave", $("#calls-wave").value);
    q.set("open", $("#calls-open").checked ? "true" : "false");
    if (!first && state.callCursor) q.set("cursor", state.callCursor);
    const campaignId = section.dataset.campaign;
    const page = await call("GET", "/v1/campaigns/" + encodeURIComponent(campaignId) + "/calls?" + q.toString());
    const list = $("#calls-list");
    if (first) list.replaceChildren();
    list.append(...(page.items || []).map((e) => callItem(campaignId, e)));
    state.callCursor = page.next_cursor || null;
    $("#calls-more").hidden = !state.callCursor;
    $("#calls-empty").hidden = list.children.length > 0;
    if (state.progress) state.troubled = troubled(state.progress);
  }

  function tail(text, n) {
    const t = String(text || "");
    return t.length > n ? t.slice(-n) : t;
  }

  function callItem(campaignId, e) {
    const vinTail = tail(e.vin, 6); // the list gives the VIN; the page shows its tail only
    const phone = e.phone_masked || "无";
    const item = h(
      "li",
      { "data-wave": String(e.wave), "data-iccid": e.iccid, "data-reason": e.reason },
      h(
        "div",
        { class: "head" },
        "车架号尾号 " + vinTail,
        h("span", { class: e.reason === "send_failed" ? "badge bad" : "badge wait", text: CALL_REASONS[e.reason] || e.reason_zh || e.reason }),
        e.outcome ? h("span", { class: "badge ok", text: CALL_OUTCOMES[e.outcome] || e.outcome_zh || e.outcome }) : null,
      ),
      h("div", { class: "meta", text: "第 " + e.wave + " 轮 · 联系电话 " + phone + " · 卡片编码 " + web.maskId(e.iccid) + " · 加入于 " + web.chinaTime(e.created_at) }),
      e.outcome
        ? h("div", { class: "meta", text: "结果记录于 " + web.chinaTime(e.outcome_at) + (e.outcome_by ? " · " + e.outcome_by : "") + (e.note ? " · 备注：" + e.note : "") })
        : null,
    );
    if (has(OUTCOME_ROLES)) item.append(outcomeForm(campaignId, e));
    return item;
  }

  function outcomeForm(campaignId, e) {
    const key = e.wave + "-" + e.iccid;
    const choice = h("select", { id: "outcome-" + key, "data-field": "outcome" }, h("option", { value: "", text: "请选择外呼结果" }));
    for (const [code, label] of Object.entries(CALL_OUTCOMES)) choice.append(h("option", { value: code, text: label, selected: e.outcome === code }));
    const note = h("textarea", { id: "note-" + key, rows: "2", maxlength: "500", "data-field": "note", placeholder: "备注（勿填手机号、证件号）" });
    if (e.note) note.value = e.note;
    for (const el of [choice, note]) el.addEventListener("input", () => (el.dataset.dirty = "1"));
    const label = (e.outcome ? "更新" : "记录") + "车架号尾号 " + tail(e.vin, 6) + " 的外呼结果";
    const button = h("button", { type: "button", class: "secondary", "aria-label": label, text: e.outcome ? "更新结果" : "记录结果" });
    const form = h(
      "div",
      { class: "answer-form outcome-form" },
      h("div", { class: "field" }, h("label", { for: choice.id, text: "外呼结果" }), choice, h("em", { class: "field-error", hidden: true })),
      h("div", { class: "field" }, h("label", { for: note.id, text: "备注" }), note, h("em", { class: "field-error", hidden: true })),
      h("p", { class: "error", role: "alert", hidden: true }),
      button,
    );
    button.addEventListener("click", () =>
      web.busy(button, "正在提交…", form, async () => {
        if (!choice.value) throw web.refusal("outcome", "请选择外呼结果");
        const path = "/v1/campaigns/" + encodeURIComponent(campaignId) + "/calls/" + e.wave + "/" + encodeURIComponent(e.iccid) + "/outcome";
        const body = { outcome: choice.value };
        if (note.value.trim()) body.note = note.value.trim();
        await call("POST", path, body);
        web.notice("已记录外呼结果");
        choice.dataset.dirty = "";
        note.dataset.dirty = "";
        await loadCalls(true);
        if (canRead() && state.campaign && state.campaign.campaign_id === campaignId) {
          // The wave's 已外呼 counts the first outcome of each entry.
          state.progress = await call("GET", "/v1/campaigns/" + encodeURIComponent(campaignId) + "/progress");
          drawProgress();
        }
      }),
    );
    return form;
  }

  /** 导出 CSV: the phones in clear, so a reason is asked and the API records the read. */
  function exportBar(campaignId) {
    const reason = h("input", { id: "calls-export-reason", "data-field": "reason", maxlength: "200", placeholder: "如：第 1 轮外呼（勿填手机号、证件号）" });
    const button = h("button", { type: "button", class: "secondary", id: "calls-export", text: "导出 CSV" });
    const bar = h(
      "div",
      { class: "reveal export" },
      h("div", { class: "field" }, h("label", { for: reason.id, text: "导出原因（导出文件含联系电话明文，本次导出将登记在查阅日志）" }), h("div", { class: "input-row" }, reason, button), h("em", { class: "field-error", hidden: true })),
      h("p", { class: "error", role: "alert", hidden: true }),
    );
    button.addEventListener("click", () =>
      web.busy(button, "正在导出…", bar, async () => {
        const why = reason.value.trim();
        if (!why) throw web.refusal("reason", "请填写导出原因");
        const q = new URLSearchParams({ reason: why });
        if ($("#calls-wave").value) q.set("wave", $("#calls-wave").value);
        if ($("#calls-open").checked) q.set("open", "true");
        // The API answers a sheet of at most 2000 lines and the next one's cursor: one file of them all.
        const path = "/v1/campaigns/" + encodeURIComponent(campaignId) + "/calls.csv?";
        let text = "";
        for (let cursor = null, first = true; first || cursor; first = false) {
          if (cursor) q.set("cursor", cursor);
          const sheet = await ctx.fetchText(path + q.toString());
          const body = sheet.text.replace(/^\uFEFF/, "");
          text += first ? body : body.replace(/^[^\n]*\n/, ""); // a later sheet's header row
          cursor = sheet.headers.get("X-Next-Cursor");
        }
        // With the BOM, so that spreadsheet programs read the Chinese as UTF-8.
        const url = URL.createObjectURL(new Blob(["\uFEFF" + text], { type: "text/csv;charset=utf-8" }));
        const link = h("a", { href: url, download: "外呼名单-" + campaignId + ".csv", hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
        reason.value = "";
        web.notice("已导出外呼名单，本次导出已登记");
      }),
    );
    return bar;
  }

  return { allowed, showList, open, leave: stopRefresh };
}
