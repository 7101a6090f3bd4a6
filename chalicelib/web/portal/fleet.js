/* 企业门户 · 单位车辆实名 (seed 000 §3–§4): the enterprise's batches. 批量实名登记 walks the steps in the
 * seed's order (vehicles by VIN, pasted or from a CSV file read here and sent as text → the selling
 * dealer → the responsible person's phone and code → business licence and authorization letter → the
 * responsible person's identity and ID photos → face → custody agreement → IoV agreement → the company's
 * full name → submit); the server says which step is next and the page follows it. 企业注销实名 walks
 * its shorter list the same way. Once submitted: the status, the reasons of the last decision, 补正 (the
 * named documents replaced, then resubmitted), the progress and each vehicle's cards. 实际使用人: the
 * enterprise's vehicles and, per card, who actually uses it (record, change, end).
 * Loaded before portal.js, which hands it the portal's client and screens (ChekaWeb.portalFleet). */
"use strict";

(function (web) {
  const { $, h } = web;

  /** 批次状态 as the enterprise reads it. */
  const STATUS_ZH = {
    draft: "草稿",
    submitted: "审核中",
    in_review: "审核中",
    resubmission_requested: "待补正",
    approved: "已通过",
    completed: "已完成",
    rejected: "已驳回",
    expired: "已过期",
  };
  const STATUS_BADGE = {
    draft: "",
    submitted: "wait",
    in_review: "wait",
    resubmission_requested: "bad",
    approved: "ok",
    completed: "ok",
    rejected: "bad",
    expired: "",
  };
  const KIND_ZH = { registration: "批量实名登记", deregistration: "企业注销实名" };

  /** The steps of each kind, in the seed's order. */
  const STEPS = {
    registration: ["vehicles", "dealer", "responsible_phone", "documents", "identity", "face", "custody_agreement", "consents", "submit"],
    deregistration: ["vehicles", "documents", "identity", "face", "submit"],
  };
  const STEP_ZH = {
    vehicles: "输入 VIN，选择车辆",
    dealer: "勾选售车经销商",
    responsible_phone: "责任人手机号",
    documents: "上传营业执照、授权书",
    identity: "责任人证件",
    face: "人脸识别",
    custody_agreement: "上传车卡分管协议",
    consents: "同意车联网协议",
    submit: "确认公司全称并提交",
  };
  /** Other names the server may give a step: the page's own name for it. */
  const STEP_ALIASES = {
    vins: "vehicles",
    phone: "responsible_phone",
    responsible: "responsible_phone",
    business_licence: "documents",
    authorization_letter: "documents",
    licence: "documents",
    responsible_identity: "identity",
    responsible_id: "identity",
    id_photos: "identity",
    responsible_id_front: "identity",
    responsible_id_back: "identity",
    liveness: "face",
    custody: "custody_agreement",
    agreement: "consents",
    iov_agreement: "consents",
    company_name: "submit",
    confirm: "submit",
  };
  /** The documents of a batch: the slot, its name, what the photo must show, the flow's document kind,
   * whether the platform reads it, and its printable template. */
  const SLOTS = {
    business_licence: ["营业执照", "营业执照正面，统一社会信用代码和名称清晰", "business_licence", true, null],
    authorization_letter: ["授权书（委托书）", "按模板填写并加盖公章", "authorization_letter", false, "authorization_letter"],
    custody_agreement: ["车卡分管协议", "按模板填写并加盖公章", "custody_agreement", false, "custody_agreement"],
    responsible_id_front: ["责任人证件（人像面）", "证件人像面，四角完整", "id_front", true, null],
    responsible_id_back: ["责任人证件（国徽面）", "证件国徽面，有效期限清晰", "id_back", true, null],
  };
  const ID_TYPES = {
    resident_id: "居民身份证",
    hk_macau_permit: "港澳居民居住证",
    taiwan_permit: "台湾居民居住证",
    foreign_permanent_id: "外国人永久居留身份证",
    hk_macau_pass: "港澳居民来往内地通行证",
    taiwan_pass: "台湾居民来往大陆通行证",
    passport: "护照",
  };
  const POLL_MS = 3000;
  /** 实名登记状态 of a card. */
  const OPERATOR_ZH = { china_mobile: "中国移动", china_unicom: "中国联通", china_telecom: "中国电信" };
  const CARD_STATE_ZH = { unregistered: "未登记", pending: "登记中", registered: "已登记", deregistered: "已注销" };

  function stepName(name) {
    return STEP_ALIASES[name] || name;
  }

  function zhOf(item) {
    if (!item) return "";
    if (typeof item === "string") return item;
    return item.message_zh || item.zh || item.text_zh || item.title_zh || item.code || "";
  }

  function vinsOf(batch) {
    const list = Array.isArray(batch.vins) ? batch.vins : Array.isArray(batch.vehicles) ? batch.vehicles : [];
    return list.map((v) => (typeof v === "string" ? { vin: v } : v));
  }

  /** The step to do: the server's, or the last one (确认提交) once every step is done. */
  function currentStep(batch) {
    return batch.step ? stepName(batch.step) : "submit";
  }

  /** A vehicle's cards as the batch tells them: [{iccid?, state, state_zh}]. */
  function cardsOf(v) {
    if (Array.isArray(v.cards)) return v.cards;
    return (v.card_states || []).map((state) => ({ state, state_zh: CARD_STATE_ZH[state] || state }));
  }

  function paragraphs(text) {
    return String(text)
      .split(/\n{2,}/)
      .map((para) => h("p", { text: para.replace(/^#+\s*/, "").replace(/\*\*/g, "") }));
  }

  /**
   * The fleet screens for the portal. `ctx`: {client, call, show, section, router(), startFace(target),
   * showDevSms(masked)}. Answers the routes to add to the portal's router.
   */
  function portalFleet(ctx) {
    const { client, call, show, section } = ctx;
    const go = (...args) => ctx.router().go(...args);
    const path = (id) => "/v1/enterprise/fleet/batches/" + encodeURIComponent(id);
    const flowPath = (batch) => "/v1/flows/" + encodeURIComponent(batch.flow_id);
    let pollTimer = 0;
    let lastRows = null; // {batch_id, added, rows}: the last VINs sent, told above the steps
    let opened = null; // a done step the person opened again to change it
    let consentTexts = null; // GET /v1/consents
    let shown = ""; // the batch and status last shown: the page scrolls only when they change

    function stopPolling() {
      clearTimeout(pollTimer);
      pollTimer = 0;
    }

    function ready(name) {
      const s = section(name);
      if (s) s.dataset.ready = "yes";
    }

    // -------------------------------------------------------------------------------------------
    // 单位车辆实名: the batches

    async function screenFleet() {
      stopPolling();
      show("fleet", "单位车辆实名");
      const list = $("#fleet-list");
      list.replaceChildren();
      const doc = await call("GET", "/v1/enterprise/fleet/batches");
      const items = doc.items || doc.batches || [];
      if (!items.length) {
        list.append(h("p", { class: "hint", text: "暂无批次。" }));
        return;
      }
      list.replaceChildren(...items.map(batchCard));
    }

    function batchCard(b) {
      const count = b.vehicles_count !== undefined ? b.vehicles_count : b.vehicles !== undefined && typeof b.vehicles === "number" ? b.vehicles : vinsOf(b).length;
      const card = h(
        "button",
        { type: "button", class: "tile batch", "data-batch": b.batch_id, "data-status": b.status },
        h("strong", {}, KIND_ZH[b.kind] || b.kind, " ", h("span", { class: "badge " + (STATUS_BADGE[b.status] || ""), text: STATUS_ZH[b.status] || b.status })),
        h("span", { text: "车辆 " + count + " 辆 · 创建于 " + web.chinaTime(b.created_at) + (b.submitted_at ? " · 提交于 " + web.chinaTime(b.submitted_at) : "") }),
      );
      card.addEventListener("click", () => go("batch", b.batch_id));
      return card;
    }

    async function newBatch(kind, button) {
      await web.busy(button, "创建中…", section("fleet"), async () => {
        const batch = await call("POST", "/v1/enterprise/fleet/batches", { kind });
        lastRows = null;
        go("batch", batch.batch_id);
      });
    }

    // -------------------------------------------------------------------------------------------
    // 一个批次

    async function screenBatch(batchId) {
      stopPolling();
      opened = null;
      show("batch", "批次");
      $("#batch-body").replaceChildren();
      $("#batch-status").replaceChildren();
      const batch = await call("GET", path(batchId));
      await render(batch);
    }

    async function reload(batchId) {
      const batch = await call("GET", path(batchId));
      await render(batch);
      return batch;
    }

    async function render(batch) {
      section("batch").dataset.ready = ""; // "yes" once this batch is shown
      const title = KIND_ZH[batch.kind] || "批次";
      $("#title").textContent = title;
      $("#batch-title").textContent = title;
      section("batch").dataset.batch = batch.batch_id;
      section("batch").dataset.status = batch.status;
      section("batch").dataset.step = batch.status === "draft" ? currentStep(batch) : "";
      statusBox(batch);
      if (batch.status === "draft") {
        $("#batch-hint").textContent =
          batch.kind === "registration"
            ? "按顺序完成以下步骤。已完成的步骤可以点“修改”重新办理。"
            : "填写要注销实名的车辆，上传营业执照、授权书和原实名认证责任人的证件，完成人脸识别后提交。";
        // The flow the batch's documents and the responsible person's identity go into, as it stands
        batch.flow = batch.flow_id ? await call("GET", flowPath(batch)) : null;
        await renderSteps(batch);
      } else {
        $("#batch-hint").textContent = "";
        await renderDetail(batch);
        if (shown !== batch.batch_id + ":" + batch.status) window.scrollTo(0, 0);
        if (["submitted", "in_review", "approved"].includes(batch.status)) poll(batch.batch_id);
      }
      shown = batch.batch_id + ":" + batch.status;
      ready("batch");
    }

    function statusBox(batch) {
      const box = $("#batch-status");
      const pairs = [
        ["状态", h("span", { class: "badge " + (STATUS_BADGE[batch.status] || ""), id: "batch-status-text", text: STATUS_ZH[batch.status] || batch.status })],
        ["企业", batch.company_name],
        ["批次号", batch.batch_id],
        ["车辆", vinsOf(batch).length + " 辆"],
        ["提交时间", web.chinaTime(batch.submitted_at)],
        ["补正次数", batch.round > 1 ? String(batch.round - 1) : ""],
      ];
      if (batch.cards_total && ["approved", "completed"].includes(batch.status)) pairs.push(["登记进度", batch.cards_pushed + " / " + batch.cards_total + " 张卡"]);
      const dl = h("dl", { class: "rows card" });
      dl.replaceChildren(...pairs.filter((p) => p[1]).map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", {}, v))));
      box.replaceChildren(dl);
    }

    /** What became of the VINs last sent: how many were added, and each refused row with its line. */
    function rowsReport(batch) {
      if (!lastRows || lastRows.batch_id !== batch.batch_id) return null;
      const bad = (lastRows.rows || []).filter((r) => !r.ok);
      const parts = [h("p", { class: "ok-box", id: "batch-rows-added", text: "已添加 " + (lastRows.added || []).length + " 辆车" })];
      if (bad.length) {
        parts.push(
          h("div", { class: "warn-box", id: "batch-rows-bad" },
            h("strong", { text: bad.length + " 行未添加：" }),
            h("ul", { class: "row-errors" }, ...bad.map((r) => h("li", { "data-line": r.line }, "第 " + r.line + " 行" + (r.vin ? " " + r.vin : "") + "：" + (r.message_zh || r.code || "")))),
          ),
        );
      }
      return h("div", { id: "batch-rows-report" }, ...parts);
    }

    function poll(batchId) {
      stopPolling();
      pollTimer = setTimeout(async () => {
        if (document.body.dataset.screen !== "batch" || section("batch").dataset.batch !== batchId) return;
        try {
          const batch = await call("GET", path(batchId));
          // Only the status box and the detail change: a form being filled stays as it is.
          if (batch.status === "resubmission_requested" && $("#batch-resubmit")) {
            statusBox(batch);
            return;
          }
          await render(batch);
        } catch (_) {
          poll(batchId); // a blip of the network: look again later
        }
      }, POLL_MS);
    }

    // -------------------------------------------------------------------------------------------
    // The steps of a draft

    async function renderSteps(batch) {
      const order = STEPS[batch.kind] || STEPS.registration;
      const current = currentStep(batch);
      const missing = new Set((batch.missing || []).map(stepName));
      const body = $("#batch-body");
      const panels = [];
      for (const name of order) {
        const done = name !== current && !missing.has(name) && order.indexOf(name) < order.indexOf(current);
        const state = name === current ? "current" : done ? "done" : "todo";
        const open = state === "current" || opened === name;
        const panel = h(
          "div",
          { class: "card step", "data-step": name, "data-state": state },
          h("p", { class: "step-head" },
            h("span", { class: "step-no", text: String(order.indexOf(name) + 1) }),
            h("strong", { text: STEP_ZH[name] || name }),
            " ",
            h("span", { class: "badge " + (state === "done" ? "ok" : state === "current" ? "wait" : ""), text: state === "done" ? "已完成" : state === "current" ? "待办理" : "未开始" }),
          ),
        );
        if (state === "done" && !open) {
          const again = h("button", { type: "button", class: "link step-edit", text: "修改" });
          again.addEventListener("click", () => {
            opened = name;
            render(batch);
          });
          panel.append(again);
        }
        if (open) {
          const error = h("p", { class: "error", role: "alert", hidden: true });
          panel.append(error);
          panel.append(...(await stepBody(name, batch, panel)));
        }
        panels.push(panel);
      }
      body.replaceChildren(...panels);
      const here = $('.step[data-step="' + (opened || current) + '"]', body);
      // The step to do at the top, under the bar
      if (here) window.scrollTo(0, Math.max(0, here.getBoundingClientRect().top + window.scrollY - $(".bar").offsetHeight - 8));
    }

    /** Run `work` for a step's button, then show the batch anew (the server says the next step; `stay`:
     * this step stays open, as the vehicles do while more are added). */
    async function act(button, label, panel, batch, work, stay) {
      section("batch").dataset.ready = "";
      await web.busy(button, label, panel, async () => {
        await work();
        opened = stay || null;
        await reload(batch.batch_id);
      });
      ready("batch"); // shown anew, or refused where the step is
    }

    function field(label, input, note) {
      return h("label", { class: "field" }, h("span", { text: label }), input, note ? h("small", { class: "field-note", text: note }) : null, h("em", { class: "field-error", hidden: true }));
    }

    async function stepBody(name, batch, panel) {
      switch (name) {
        case "vehicles":
          return vehiclesStep(batch, panel);
        case "dealer":
          return dealerStep(batch, panel);
        case "responsible_phone":
          return phoneStep(batch, panel);
        case "documents":
          if (batch.flow && !batch.flow.identity) {
            // The licence is read against the enterprise the identity names: that comes first.
            return [h("p", { class: "warn-box", text: "请先填写责任人证件信息，再上传营业执照和授权书。" }), ...identityForm(batch, panel, batch.flow)];
          }
          return documentsStep(batch, panel, ["business_licence", "authorization_letter"]);
        case "identity":
          return identityStep(batch, panel);
        case "face":
          return faceStepBody(batch);
        case "custody_agreement":
          return documentsStep(batch, panel, ["custody_agreement"]);
        case "consents":
          return consentsStep(batch, panel);
        case "submit":
          return submitStep(batch, panel);
        default:
          return [h("p", { class: "hint", text: "请按提示办理。" })];
      }
    }

    // 输入 VIN，选择车辆: typed or pasted (one a line), or a CSV file read here and sent as text.
    function vehiclesStep(batch, panel) {
      const vins = h("textarea", { id: "fleet-vins", "data-field": "vins", rows: "4", placeholder: "输入 17 位 VIN，多辆车每行一个，可直接粘贴" });
      const add = h("button", { type: "button", class: "secondary block", id: "fleet-vins-add", text: "添加车辆" });
      add.addEventListener("click", () =>
        act(add, "添加中…", panel, batch, async () => {
          const list = vins.value.split(/[\s,，;；]+/).map((v) => v.trim().toUpperCase()).filter(Boolean);
          if (!list.length) throw web.refusal("vins", "请输入车辆 VIN");
          lastRows = { batch_id: batch.batch_id, ...(await call("POST", path(batch.batch_id) + "/vehicles", { vins: list })) };
        }, "vehicles"),
      );
      const csv = h("input", { type: "file", id: "fleet-csv", accept: ".csv,text/csv,text/plain" });
      csv.addEventListener("change", async () => {
        const file = csv.files && csv.files[0];
        csv.value = "";
        if (!file) return;
        const note = $("#fleet-csv-note", panel);
        note.textContent = "正在导入 " + file.name + "…";
        // The label holds the file input: a detached button carries the busy state instead.
        await act(h("button"), "导入中…", panel, batch, async () => {
          if (file.size > 512 * 1024) throw web.refusal("csv", "CSV 文件过大（最多 500 辆车）");
          const text = await file.text();
          lastRows = { batch_id: batch.batch_id, ...(await call("POST", path(batch.batch_id) + "/vehicles/csv", { csv: text })) };
        }, "vehicles");
      });
      const parts = [
        field("车辆 VIN", vins),
        add,
        h("div", { class: "field" },
          h("label", { class: "secondary block", id: "fleet-csv-label" }, h("span", { text: "导入 CSV 文件" }), csv),
          h("small", { class: "field-note", id: "fleet-csv-note", text: "CSV 每行一个 VIN（可含表头 vin）；有误的行会标出行号，其余照常添加。" }),
          h("em", { class: "field-error", hidden: true }),
        ),
      ];
      const report = rowsReport(batch);
      if (report) parts.push(report);
      const list = vinsOf(batch);
      parts.push(h("h4", { text: "已选车辆（" + list.length + " 辆）" }));
      const ul = h("ul", { class: "vin-list", id: "fleet-selected" });
      for (const v of list) {
        const remove = h("button", { type: "button", class: "link", text: "移除" });
        remove.addEventListener("click", () =>
          act(remove, "移除中…", panel, batch, async () => {
            await call("DELETE", path(batch.batch_id) + "/vehicles/" + encodeURIComponent(v.vin));
            lastRows = null;
          }, "vehicles"),
        );
        ul.append(h("li", { "data-vin": v.vin }, h("code", { text: v.vin }), v.model ? " " + v.model : "", " ", remove));
      }
      if (!list.length) ul.append(h("li", { class: "hint", text: "尚未添加车辆" }));
      parts.push(ul);
      if (list.length) {
        const next = h("button", { type: "button", class: "primary", id: "fleet-vehicles-done", text: "下一步" });
        next.addEventListener("click", () => {
          opened = null;
          lastRows = null;
          render(batch);
        });
        parts.push(next);
      }
      return parts;
    }

    // 勾选售车经销商
    async function dealerStep(batch, panel) {
      const doc = await call("GET", path(batch.batch_id) + "/dealers");
      const dealers = doc.items || doc.dealers || [];
      const box = h("fieldset", { class: "field" }, h("legend", { text: "售车经销商" }));
      const choices = h("div", { class: "choices column", "data-field": "dealer_code" });
      for (const d of dealers) {
        const input = h("input", { type: "radio", name: "fleet-dealer", value: d.dealer_code, checked: d.dealer_code === batch.dealer_code });
        choices.append(h("label", {}, input, " " + (d.name || d.dealer_name || d.dealer_code) + (d.vehicles ? "（售出本批 " + d.vehicles + " 辆）" : "")));
      }
      box.append(choices, h("em", { class: "field-error", hidden: true }));
      if (!dealers.length) box.append(h("p", { class: "hint", text: "未找到本批车辆的售车经销商。" }));
      const save = h("button", { type: "button", class: "primary", id: "fleet-dealer-save", text: "确认经销商" });
      save.addEventListener("click", () =>
        act(save, "保存中…", panel, batch, async () => {
          const chosen = $('input[name="fleet-dealer"]:checked', panel);
          if (!chosen) throw web.refusal("dealer_code", "请勾选售车经销商");
          await call("PUT", path(batch.batch_id) + "/dealer", { dealer_code: chosen.value });
        }),
      );
      return [box, save];
    }

    // 填写车辆负责人/使用人手机号 + 验证码
    function phoneStep(batch, panel) {
      const phone = h("input", { id: "fleet-phone", "data-field": "phone", type: "tel", inputmode: "numeric", maxlength: "11", placeholder: "责任人手机号" });
      const code = h("input", { id: "fleet-code", "data-field": "code", inputmode: "numeric", maxlength: "6", autocomplete: "one-time-code", placeholder: "短信验证码" });
      const send = h("button", { type: "button", class: "secondary", id: "fleet-code-send", text: "获取验证码" });
      web.smsButton(send, {
        keyOf: () => "fleet:" + phone.value.trim(),
        check: () => {
          if (!/^1[3-9]\d{9}$/.test(phone.value.trim())) throw web.refusal("phone", "请输入正确的 11 位手机号码");
        },
        send: async () => {
          const answer = await web.withCaptcha((extra) =>
            call("POST", path(batch.batch_id) + "/responsible-phone/code", { phone: phone.value.trim(), ...extra }),
          );
          return { ...(answer || {}), phone_masked: web.maskPhone(phone.value.trim()) };
        },
        sent: () => ctx.showDevSms(web.maskPhone(phone.value.trim())),
        scope: panel,
      });
      const save = h("button", { type: "button", class: "primary", id: "fleet-phone-save", text: "验证手机号" });
      save.addEventListener("click", () =>
        act(save, "验证中…", panel, batch, async () => {
          if (!/^\d{6}$/.test(code.value.trim())) throw web.refusal("code", "请输入 6 位短信验证码");
          await call("PUT", path(batch.batch_id) + "/responsible-phone", { phone: phone.value.trim(), code: code.value.trim() });
        }),
      );
      return [
        h("p", { class: "hint", text: "车辆负责人（责任人）的手机号，用于接收审核结果和登记通知。" }),
        field("责任人手机号", phone),
        h("div", { class: "field" }, h("label", { for: "fleet-code", text: "短信验证码" }), h("span", { class: "input-row" }, code, send), h("em", { class: "field-error", hidden: true })),
        save,
      ];
    }

    function present(batch, slot) {
      const kind = SLOTS[slot][2];
      if (batch.flow && (batch.flow.documents || []).includes(kind)) return true;
      const docs = batch.documents || {};
      if (Array.isArray(docs)) {
        const d = docs.find((x) => x.slot === slot || x.kind === slot);
        return Boolean(d && (d.present === undefined ? true : d.present));
      }
      const d = docs[slot];
      return Boolean(d && (typeof d === "object" ? d.present !== false : d));
    }

    /** A printable template, fetched with the sign-in and saved as a file. */
    async function downloadTemplate(name) {
      const response = await fetch(client.root + "/v1/enterprise/fleet/templates/" + encodeURIComponent(name), {
        headers: client.token() ? { Authorization: "Bearer " + client.token() } : {},
      });
      if (!response.ok) {
        let body = {};
        try {
          body = await response.json();
        } catch (_) {
          // not JSON: the status says it
        }
        throw new web.ApiError(response.status, body);
      }
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name + ".html" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }

    function templateLink(name, scope) {
      const link = h("button", { type: "button", class: "link template", "data-template": name, text: "下载模板" });
      link.addEventListener("click", async () => {
        web.clearErrors(scope);
        try {
          await downloadTemplate(name);
        } catch (error) {
          web.showError(error, scope);
        }
      });
      return link;
    }

    /** One document's box: upload through the batch's flow, read by the platform where it reads it. */
    function docBox(batch, slot, panel, onDone) {
      const [label, hint, kind, read, template] = SLOTS[slot];
      const done = present(batch, slot);
      const input = h("input", { type: "file", accept: "image/*", id: "fleet-doc-" + slot + "-file" });
      const box = h(
        "div",
        { class: "doc", id: "fleet-doc-" + slot, "data-state": done ? "done" : "" },
        h("strong", { text: label }),
        template ? [" ", templateLink(template, panel)] : null,
        h("p", { class: "doc-status", text: done ? "已上传" : hint }),
        h("label", { class: "secondary block" }, h("span", { text: done ? "重新上传" : "选择照片" }), input),
      );
      const state = (name, text) => {
        box.dataset.state = name;
        $(".doc-status", box).textContent = text;
        $("label span", box).textContent = name === "done" ? "重新上传" : "选择照片";
      };
      input.addEventListener("change", async () => {
        const file = input.files && input.files[0];
        input.value = "";
        if (!file) return;
        web.clearErrors(panel);
        try {
          await web.storePhoto(client, batch.flow_id, kind, file, (text) => state("busy", text));
          if (read) {
            state("busy", "正在识别并核对…");
            await call("POST", flowPath(batch) + "/ocr/" + kind);
          }
          state("done", read ? "已上传并核对一致" : "已上传");
          if (onDone) await onDone(slot);
        } catch (error) {
          const err = web.asError(error);
          state("failed", err.messageZh);
        }
      });
      return box;
    }

    function documentsStep(batch, panel, slots) {
      const boxes = slots.map((slot) => docBox(batch, slot, panel, null));
      const next = h("button", { type: "button", class: "primary", id: "fleet-docs-next-" + slots[0], text: "下一步" });
      next.addEventListener("click", () =>
        act(next, "检查中…", panel, batch, async () => {
          const fresh = await call("GET", path(batch.batch_id));
          const lacking = slots.filter((s) => !present(fresh, s) && $("#fleet-doc-" + s, panel).dataset.state !== "done");
          if (lacking.length) throw web.refusal("documents", "请上传" + lacking.map((s) => SLOTS[s][0]).join("、"));
        }),
      );
      return [h("p", { class: "hint", text: "照片支持 jpg、png，四角完整、文字清晰。" }), h("div", { class: "docs" }, ...boxes), next];
    }

    /** The responsible person's identity as typed, with the enterprise's USCC and name: the business
     * licence is read against the latter, the ID photos against the former. */
    function identityForm(batch, panel, flow) {
      const hasIdentity = Boolean(flow.identity);
      const type = h("select", { id: "fleet-id-type", "data-field": "id_type" }, ...Object.entries(ID_TYPES).map(([v, t]) => h("option", { value: v, text: t })));
      const name = h("input", { id: "fleet-id-name", "data-field": "name", maxlength: "64", placeholder: "责任人姓名" });
      const number = h("input", { id: "fleet-id-number", "data-field": "id_number", maxlength: "32", autocapitalize: "characters", placeholder: "证件号" });
      const address = h("input", { id: "fleet-id-address", "data-field": "address", maxlength: "128", placeholder: "证件上的住址" });
      const save = h("button", { type: "button", class: "secondary block", id: "fleet-identity-save", text: "保存证件信息" });
      save.addEventListener("click", () =>
        web.busy(save, "保存中…", panel, async () => {
          const missing = [];
          if (!name.value.trim()) missing.push({ field: "name", message_zh: "请填写责任人姓名" });
          if (!number.value.trim()) missing.push({ field: "id_number", message_zh: "请填写证件号" });
          if (missing.length) throw new web.ApiError(422, { code: "client.form", message_zh: missing[0].message_zh, details: { errors: missing } });
          await call("PUT", flowPath(batch) + "/identity", {
            id_type: type.value,
            id_number: number.value.trim().toUpperCase(),
            name: name.value.trim(),
            address: address.value.trim() || null,
            uscc: batch.uscc,
            company_name: batch.company_name,
          });
          await reload(batch.batch_id);
        }),
      );
      const parts = [
        h("p", { class: "hint", text: batch.kind === "deregistration" ? "原实名认证责任人的证件信息（须与登记时一致）。" : "车辆负责人（责任人）的证件信息。" }),
      ];
      if (hasIdentity) {
        const who = flow.identity.name + "（" + (ID_TYPES[flow.identity.id_type] || "") + " " + flow.identity.id_number + "）";
        parts.push(h("p", { class: "ok-box", id: "fleet-identity-saved", text: "证件信息已保存：" + who }));
      }
      const form = h("div", { class: "identity-form", hidden: hasIdentity }, field("证件类型", type), field("姓名", name), field("证件号", number), field("住址", address), save);
      parts.push(form);
      if (hasIdentity) {
        const change = h("button", { type: "button", class: "link", id: "fleet-identity-change", text: "修改证件信息" });
        change.addEventListener("click", () => {
          form.hidden = false;
          change.hidden = true;
        });
        parts.push(change);
      }
      return parts;
    }

    // 责任人证件: the identity as typed, the separate biometric consent, the ID photos read and cross-checked
    async function identityStep(batch, panel) {
      const flow = batch.flow || (await call("GET", flowPath(batch)));
      const hasIdentity = Boolean(flow.identity);
      const parts = identityForm(batch, panel, flow);
      if (!hasIdentity) return parts;
      const given = flow.checks && flow.checks.biometric_consent === "passed";
      if (!given) {
        consentTexts = consentTexts || (await call("GET", "/v1/consents")).documents;
        const doc = consentTexts.find((d) => d.kind === "biometric_consent");
        const check = h("input", { type: "checkbox", id: "fleet-bio-check" });
        const agree = h("button", { type: "button", class: "primary", id: "fleet-bio-submit", disabled: true, text: "同意并上传证件" });
        check.addEventListener("change", () => (agree.disabled = !check.checked));
        agree.addEventListener("click", () =>
          web.busy(agree, "提交中…", panel, async () => {
            await call("POST", flowPath(batch) + "/biometric-consent", {
              version: doc.version,
              sha256: doc.sha256,
              client: { user_agent: navigator.userAgent.slice(0, 300), screen: screen.width + "x" + screen.height },
            });
            opened = "identity";
            await reload(batch.batch_id);
          }),
        );
        parts.push(
          h("p", { class: "hint", text: "证件人像面的照片含有人脸，上传前请责任人阅读并单独同意人脸信息处理。" }),
          h("div", { class: "consent biometric" },
            h("h3", { text: "单独同意 · " + doc.title + "（" + doc.version + "）" }),
            h("div", { class: "consent-text", tabindex: "0" }, ...paragraphs(doc.text)),
            h("label", { class: "consent-check" }, check, h("span", { text: "责任人单独同意平台按上述方式处理其人脸信息" })),
          ),
          agree,
        );
        return parts;
      }
      const slots = flow.identity && flow.identity.id_type && flow.identity.id_type !== "resident_id" ? ["responsible_id_front"] : ["responsible_id_front", "responsible_id_back"];
      parts.push(h("div", { class: "docs" }, ...slots.map((slot) => docBox(batch, slot, panel, null))));
      const next = h("button", { type: "button", class: "primary", id: "fleet-identity-next", text: "下一步：人脸识别" });
      next.addEventListener("click", () => act(next, "检查中…", panel, batch, async () => {}));
      parts.push(next);
      return parts;
    }

    function faceStepBody(batch) {
      const start = h("button", { type: "button", class: "primary", id: "fleet-face-start", text: "开始人脸识别" });
      start.addEventListener("click", () => go("batch-face", batch.batch_id));
      return [h("p", { class: "hint", text: "请责任人本人在摄像头前完成人脸识别，将与其证件照片比对。" }), start];
    }

    async function screenBatchFace(batchId) {
      stopPolling();
      const batch = await call("GET", path(batchId));
      ctx.startFace({
        flowId: () => batch.flow_id,
        passed: async () => {
          opened = null;
          go("batch", batchId);
        },
      });
    }

    // 同意车联网协议: the registration agreement and the responsibility notice, and the custody agreement
    async function consentsStep(batch, panel) {
      consentTexts = consentTexts || (await call("GET", "/v1/consents")).documents;
      const wanted = batch.consent_texts || {};
      const docs = consentTexts.filter((d) => d.kind !== "biometric_consent" && (!Object.keys(wanted).length || wanted[d.kind]));
      const texts = h("div", { class: "consent" });
      for (const d of docs) {
        texts.append(h("h3", { text: "《" + d.title + "》（" + d.version + "）" }), h("div", { class: "consent-text", tabindex: "0" }, ...paragraphs(d.text)));
      }
      const custody = h("input", { type: "checkbox", id: "fleet-consent-custody" });
      const iov = h("input", { type: "checkbox", id: "fleet-consent-iov", "data-field": "texts" });
      const save = h("button", { type: "button", class: "primary", id: "fleet-consents-save", text: "同意" });
      save.addEventListener("click", () =>
        act(save, "提交中…", panel, batch, async () => {
          if (!custody.checked) throw web.refusal("custody", "请确认车卡分管协议");
          if (!iov.checked) throw web.refusal("texts", "请阅读并勾选同意车联网协议");
          const given = { ...(batch.consent_texts || {}) };
          if (!Object.keys(given).length) for (const d of docs) given[d.kind] = d.version;
          await call("POST", path(batch.batch_id) + "/consents", { texts: given });
        }),
      );
      return [
        texts,
        h("div", { class: "field agree" },
          h("label", { class: "agree-row" }, custody, h("span", { text: "已上传的车卡分管协议由本企业签署，车辆由责任人分管使用" })),
          h("em", { class: "field-error", hidden: true }),
        ),
        h("div", { class: "field agree" },
          h("label", { class: "agree-row" }, iov, h("span", { text: "已阅读并同意以上车联网协议" })),
          h("em", { class: "field-error", hidden: true }),
        ),
        save,
      ];
    }

    // 确认实名登记（注销）结果: the company's full name, as on its business licence
    function submitStep(batch, panel) {
      const name = h("input", { id: "fleet-company-name", "data-field": "company_name", maxlength: "100", placeholder: "请输入公司全称" });
      const submit = h("button", { type: "button", class: "primary", id: "fleet-submit", text: batch.kind === "deregistration" ? "确认注销" : "确认登记" });
      submit.addEventListener("click", () =>
        act(submit, "提交中…", panel, batch, async () => {
          if (!name.value.trim()) throw web.refusal("company_name", "请输入公司全称");
          await call("POST", path(batch.batch_id) + "/submit", { company_name: name.value.trim() });
          lastRows = null;
          web.notice("已提交，请等待平台审核");
        }),
      );
      const list = h("ul", { class: "vin-list" }, ...vinsOf(batch).map((v) => h("li", {}, h("code", { text: v.vin }))));
      return [
        h("p", { class: "hint", text: (batch.kind === "deregistration" ? "将注销以下 " : "将登记以下 ") + vinsOf(batch).length + " 辆车的车联网卡。请输入公司全称（须与营业执照一致）确认。" }),
        list,
        field("公司全称", name, "与营业执照上的名称一字不差"),
        submit,
      ];
    }

    // -------------------------------------------------------------------------------------------
    // A submitted batch: status, reasons, 补正, the cards

    async function renderDetail(batch) {
      const body = $("#batch-body");
      const parts = [];
      const hints = {
        submitted: "已提交，平台正在自动核验材料。",
        in_review: "材料已进入人工审核，结果将以短信通知责任人，并在此显示。",
        resubmission_requested: "审核人员要求补正以下材料：重新上传后点“重新提交”。",
        approved: "审核已通过，正在为每张卡办理" + (batch.kind === "deregistration" ? "注销" : "登记") + "并报送运营商。",
        completed: batch.kind === "deregistration" ? "已完成：车联网卡已注销实名。" : "已完成：车联网卡已登记到本企业。",
        rejected: "审核未通过。",
        expired: "未在期限内补正，批次已过期。可以新建批次重新办理。",
      };
      parts.push(h("p", { class: ["completed", "approved"].includes(batch.status) ? "ok-box" : ["rejected", "expired", "resubmission_requested"].includes(batch.status) ? "warn-box" : "hint", id: "batch-outcome", text: hints[batch.status] || "" }));
      const reasons = batch.reasons || batch.outcome_reasons || [];
      if (reasons.length) {
        parts.push(h("h3", { text: "审核意见" }), h("ul", { class: "reasons", id: "batch-reasons" }, ...reasons.map((r) => h("li", { "data-code": r.code || r, text: zhOf(r) }))));
      }
      if (batch.status === "resubmission_requested") parts.push(...resubmitPanel(batch));
      if (batch.cards_total && ["approved", "completed"].includes(batch.status)) {
        const share = Math.round((100 * (batch.cards_pushed || 0)) / batch.cards_total);
        parts.push(h("div", { class: "progress", id: "batch-progress", role: "progressbar", "aria-valuenow": String(share), "aria-valuemin": "0", "aria-valuemax": "100" }, h("span", { style: "width:" + share + "%" })));
      }
      parts.push(h("h3", { text: "车辆（" + vinsOf(batch).length + " 辆）" }));
      const list = h("div", { id: "batch-vehicles" });
      for (const v of vinsOf(batch)) {
        const cards = cardsOf(v);
        list.append(
          h("div", { class: "card vehicle", "data-vin": v.vin },
            h("p", {}, h("code", { text: v.vin }), v.model ? " " + v.model : ""),
            cards.length
              ? h("ul", { class: "cards" }, ...cards.map((c) => h("li", { class: "card-state", "data-iccid": c.iccid || "", "data-state": c.state || c.status || "" }, c.iccid ? h("span", { text: (c.iccid_masked || c.iccid) + " " }) : "车联网卡 ", h("span", { class: "badge " + cardBadge(c), text: c.state_zh || c.status_zh || c.state || c.status || "" }))))
              : null,
          ),
        );
      }
      parts.push(list);
      const refresh = h("button", { type: "button", class: "secondary block", id: "batch-refresh", text: "刷新" });
      refresh.addEventListener("click", () => web.busy(refresh, "刷新中…", section("batch"), () => reload(batch.batch_id)));
      parts.push(refresh);
      body.replaceChildren(...parts);
    }

    function cardBadge(c) {
      const s = String(c.state || c.status || "");
      if (/registered|accepted|active|deregistered|done|ok/.test(s) && !/fail|reject/.test(s)) return "ok";
      if (/fail|reject|refused/.test(s)) return "bad";
      return "wait";
    }

    /** 重新提交. The batch shows 待补正 as soon as the reviewer decides; the review workflow takes a moment
     * more to wait for the resubmission: asked again for a few seconds while it is not waiting yet. */
    async function resubmit(batchId) {
      return call("POST", path(batchId) + "/resubmit", {});
    }

    function resubmitPanel(batch) {
      const slots = (batch.resubmit_documents || []).map((s) => (typeof s === "string" ? s : s.slot)).filter((s) => SLOTS[s]);
      const panel = h("div", { class: "card step", id: "batch-resubmit", "data-step": "resubmit" }, h("p", { class: "step-head" }, h("strong", { text: "补正材料" })));
      const error = h("p", { class: "error", role: "alert", hidden: true });
      const replaced = new Set();
      const boxes = slots.map((slot) => {
        const box = docBox({ ...batch, documents: {} }, slot, panel, async (s) => {
          replaced.add(s);
        });
        return box;
      });
      const send = h("button", { type: "button", class: "primary", id: "batch-resubmit-send", text: "重新提交" });
      send.addEventListener("click", () =>
        web.busy(send, "提交中…", panel, async () => {
          const lacking = slots.filter((s) => !replaced.has(s));
          if (lacking.length) throw web.refusal("documents", "请先重新上传" + lacking.map((s) => SLOTS[s][0]).join("、"));
          await resubmit(batch.batch_id);
          web.notice("已重新提交，请等待平台审核");
          await reload(batch.batch_id);
        }),
      );
      panel.append(
        h("p", { class: "hint", text: "需重新上传：" + slots.map((s) => SLOTS[s][0]).join("、") }),
        error,
        h("div", { class: "docs" }, ...boxes),
        send,
      );
      return [panel];
    }

    // -------------------------------------------------------------------------------------------
    // 实际使用人

    let vehiclesCursor = null;

    async function screenVehicles() {
      stopPolling();
      show("vehicles", "实际使用人");
      $("#vehicles-list").replaceChildren();
      vehiclesCursor = null;
      await moreVehicles();
    }

    async function moreVehicles() {
      const doc = await call("GET", "/v1/enterprise/vehicles" + (vehiclesCursor ? "?cursor=" + encodeURIComponent(vehiclesCursor) : ""));
      const items = doc.items || doc.vehicles || [];
      vehiclesCursor = doc.next_cursor || null;
      $("#vehicles-more").hidden = !vehiclesCursor;
      const list = $("#vehicles-list");
      if (!items.length && !list.childElementCount) {
        list.append(h("p", { class: "hint", text: "本企业暂无已登记的车辆。" }));
        return;
      }
      list.append(
        ...items.map((v) =>
          h("div", { class: "card vehicle", "data-vin": v.vin },
            h("p", {}, h("code", { text: v.vin }), " " + [v.brand, v.model, v.colour].filter(Boolean).join(" ")),
            h("ul", { class: "cards" }, ...(v.cards || []).map((c) => {
              const user = c.actual_user;
              const open = h("button", { type: "button", class: "link card-users", "data-iccid": c.iccid, text: user ? "使用人 " + user.name + " · 变更" : "登记实际使用人" });
              open.addEventListener("click", () => go("card-users", c.iccid));
              return h("li", { "data-iccid": c.iccid },
                h("span", { text: (OPERATOR_ZH[c.operator] || c.operator || "") + " " + (c.msisdn || "") + " " }),
                h("span", { class: "badge " + cardBadge(c), text: c.state_zh || c.state || "" }), " ", open);
            })),
          ),
        ),
      );
    }

    async function screenCardUsers(iccid) {
      stopPolling();
      show("card-users", "实际使用人");
      section("card-users").dataset.iccid = iccid;
      resetUserForm();
      await loadUsers(iccid);
    }

    /** The form empty again, the use starting today (China). */
    function resetUserForm() {
      $("#card-users-form").reset();
      $("#au-from").value = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
    }

    async function loadUsers(iccid) {
      const doc = await call("GET", "/v1/enterprise/cards/" + encodeURIComponent(iccid) + "/actual-users");
      const records = doc.items || [];
      ctx.rows($("#card-users-card"), [["ICCID", doc.iccid || iccid]]);
      const current = records.find((r) => r.current);
      $("#card-users-form-title").textContent = current ? "更换实际使用人" : "登记实际使用人";
      const history = $("#card-users-history");
      if (!records.length) {
        history.replaceChildren(h("p", { class: "hint", text: "尚未登记实际使用人。" }));
        return;
      }
      history.replaceChildren(
        ...records.map((r) => {
          const to = r.valid_to || "";
          const box = h("div", { class: "card actual-user", "data-record": r.record_id, "data-current": r.current ? "yes" : "no" });
          box.append(h("p", {}, h("strong", { text: r.name }), " ", h("span", { class: "badge " + (r.current ? "ok" : ""), text: r.current ? "使用中" : to ? "已结束" : "未开始" })));
          const dl = h("dl", { class: "rows" });
          ctx.rows(dl, [
            ["证件", (r.id_type_zh || ID_TYPES[r.id_type] || "") + " " + r.id_number],
            ["手机号", r.phone],
            ["使用期间", r.valid_from + " 至 " + (to || "今")],
            ["报送运营商", r.push_state === "not_wanted" ? "" : r.push_state_zh + (r.push_reason ? "（" + r.push_reason + "）" : "")],
          ]);
          box.append(dl);
          if (!to) {
            const end = h("button", { type: "button", class: "secondary danger", text: "结束使用" });
            end.addEventListener("click", () =>
              web.busy(end, "处理中…", section("card-users"), async () => {
                const today = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
                await call("POST", "/v1/enterprise/cards/" + encodeURIComponent(iccid) + "/actual-users/" + encodeURIComponent(r.record_id) + "/end", { valid_to: today });
                web.notice("已结束该使用人的记录");
                await loadUsers(iccid);
              }),
            );
            box.append(end);
          }
          return box;
        }),
      );
    }

    async function saveUser(event) {
      event.preventDefault();
      const iccid = section("card-users").dataset.iccid;
      await web.busy($("#au-submit"), "保存中…", section("card-users"), async () => {
        const v = (id) => $("#" + id).value.trim();
        const missing = [];
        if (!v("au-name")) missing.push({ field: "name", message_zh: "请填写姓名" });
        if (!v("au-id-number")) missing.push({ field: "id_number", message_zh: "请填写证件号" });
        if (!/^1[3-9]\d{9}$/.test(v("au-phone"))) missing.push({ field: "phone", message_zh: "请输入正确的 11 位手机号码" });
        if (!v("au-from")) missing.push({ field: "valid_from", message_zh: "请选择开始使用日期" });
        if (missing.length) throw new web.ApiError(422, { code: "client.form", message_zh: missing[0].message_zh, details: { errors: missing } });
        const body = {
          name: v("au-name"),
          id_type: $("#au-id-type").value,
          id_number: v("au-id-number").toUpperCase(),
          phone: v("au-phone"),
          valid_from: v("au-from"),
        };
        if (v("au-to")) body.valid_to = v("au-to");
        await call("POST", "/v1/enterprise/cards/" + encodeURIComponent(iccid) + "/actual-users", body);
        resetUserForm();
        web.notice("实际使用人已保存");
        await loadUsers(iccid);
      });
    }

    // -------------------------------------------------------------------------------------------
    // Wiring

    function wire() {
      $("#fleet-new-registration").addEventListener("click", (e) => newBatch("registration", e.currentTarget));
      $("#fleet-new-deregistration").addEventListener("click", (e) => newBatch("deregistration", e.currentTarget));
      $("#batch-back").addEventListener("click", () => go("fleet"));
      $("#vehicles-more").addEventListener("click", () => web.busy($("#vehicles-more"), "加载中…", section("vehicles"), moreVehicles));
      $("#card-users-form").addEventListener("submit", saveUser);
    }

    wire();
    return {
      routes: {
        fleet: screenFleet,
        batch: screenBatch,
        "batch-face": screenBatchFace,
        vehicles: screenVehicles,
        "card-users": screenCardUsers,
      },
      stop: stopPolling,
      ready,
    };
  }

  web.portalFleet = portalFleet;
})((window.ChekaWeb = window.ChekaWeb || {}));
