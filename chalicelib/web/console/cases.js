/* The console's case pages: a review case (人工审核), a fleet case (企业批次) and a spot check (抽查).
 * Each shows what the reviewer decides on: the typed values beside what OCR read, the face results, the
 * documents (each through a 60-second link, watermarked with the viewer by the server, every view in the
 * read log), the evidence chain, the workflow's history (fleet cases), and the decision form with the
 * refusals' messages as the API gives them (conflict of interest, four-eyes, escalated). Personal data
 * shows masked; in clear only with a reason (查阅原因), which the API records. */

import {
  BATCH_KINDS,
  BATCH_STATUS,
  CHECKS,
  DECISIONS,
  DOCUMENTS,
  FIELDS,
  PURPOSES,
  REASONS,
  REVIEW_STATUS,
  SPOT_STATUS,
  STAGES,
  VERDICTS,
  timer,
} from "./labels.js";

export function cases(ctx) {
  const { web, call } = ctx;
  const { $, h } = web;
  const scope = () => $('section[data-screen="case"]');
  let reasonCodes = null; // GET /v1/fleet-reasons, once

  // -------------------------------------------------------------------------------------------
  // Building blocks

  function rows(pairs) {
    return h(
      "dl",
      { class: "rows" },
      pairs
        .filter(([, value]) => value !== undefined && value !== null && value !== "")
        .map(([label, value]) => h("div", {}, h("dt", { text: label }), h("dd", {}, value))),
    );
  }

  function text(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function block(title, ...children) {
    return h("div", { class: "block" }, h("h3", { text: title }), ...children);
  }

  function verdictBadge(verdict) {
    const v = String(verdict || "");
    const cls = /pass|ok|match|approved|confirmed/.test(v) ? "badge ok" : /fail|mismatch|reject|bad/.test(v) ? "badge bad" : "badge wait";
    return h("span", { class: cls, text: VERDICTS[v] || v });
  }

  /** The reveal bar: with a reason the page is read again in clear (the API records the read). */
  function revealBar(reload, revealed) {
    if (revealed) return h("p", { class: "ok-box", text: "个人信息已显示明文，本次查阅已登记（原因：" + revealed + "）" });
    const input = h("input", { "data-field": "reason", maxlength: "200", placeholder: "查阅原因（勿填手机号、证件号）" });
    const button = h("button", { type: "button", class: "secondary", text: "显示明文" });
    const bar = h(
      "div",
      { class: "reveal" },
      h("label", { class: "field" }, h("span", { text: "个人信息默认脱敏显示" }), h("div", { class: "input-row" }, input, button), h("em", { class: "field-error", hidden: true })),
    );
    button.addEventListener("click", () => web.busy(button, "读取中…", bar, () => reload(input.value.trim())));
    return bar;
  }

  // -------------------------------------------------------------------------------------------
  // Documents: a link asked for each view; the image is the server's, watermarked

  function documentButton(recordKind, recordId, document, label, flowId) {
    const button = h("button", { type: "button", class: "secondary doc-view", "data-document": document, text: "查看" });
    button.addEventListener("click", () =>
      web.busy(button, "打开中…", scope(), async () => {
        const body = { record_kind: recordKind, record_id: recordId, document };
        if (flowId) body.flow_id = flowId;
        const link = await call("POST", "/v1/console/document-links", body);
        openViewer(label, link);
      }),
    );
    return h("li", { class: "doc-item" }, h("span", { text: label }), button);
  }

  function openViewer(label, link) {
    const viewer = $("#viewer");
    const image = $("#viewer-image");
    web.clearErrors(viewer);
    $("#viewer-title").textContent = label + "（仅供审核）";
    image.alt = label;
    image.hidden = false;
    image.onerror = () => {
      image.hidden = true;
      web.showError(new web.ApiError(0, { code: "console.document", message_zh: "图片无法显示：链接已过期，或本次查看未能登记。请关闭后重新查看。" }), viewer);
    };
    image.src = ctx.root() + link.url;
    viewer.hidden = false;
    $("#viewer-close").focus();
  }

  function closeViewer() {
    const image = $("#viewer-image");
    image.removeAttribute("src"); // the link is not kept once the viewer closes
    $("#viewer").hidden = true;
  }

  // -------------------------------------------------------------------------------------------
  // The evidence chain and the workflow's history

  /** A fact of an entry, as a line: "key = value · key = value". */
  function facts(doc) {
    return Object.entries(doc || {})
      .map(([k, v]) => k + " = " + text(v))
      .join(" · ");
  }

  /** The evidence chain: {chain: {ok, first_bad_seq, reason} | "ok" | "<reason>", entries}. */
  function evidenceBlock(evidence) {
    if (!evidence) return null;
    const chain = evidence.chain;
    const ok = typeof chain === "string" ? chain === "ok" || chain === "empty" : !chain || chain.ok !== false;
    const entries = evidence.entries || [];
    const why = typeof chain === "string" ? chain : chain && (chain.reason || "") + (chain.first_bad_seq ? " #" + chain.first_bad_seq : "");
    return block(
      "查验日志（证据链）",
      h("p", { class: ok ? "ok-box" : "warn-box", text: ok ? "证据链校验通过，共 " + entries.length + " 条" : "证据链校验未通过：" + why }),
      h(
        "ol",
        { class: "evidence" },
        entries.map((e) =>
          h(
            "li",
            {},
            h("span", { class: "meta", text: web.chinaTime(e.at) + " · #" + e.seq + " · " + e.actor + " " }),
            h("strong", { text: e.kind }),
            h("div", { class: "small", text: facts(e.public) }),
            Array.isArray(e.personal) && e.personal.length
              ? h("div", { class: "small muted", text: "个人信息（未显示明文）：" + e.personal.join("、") })
              : e.personal && Object.keys(e.personal).length
                ? h("div", { class: "small", text: "个人信息：" + facts(e.personal) })
                : null,
          ),
        ),
      ),
    );
  }

  async function historyBlock(batchId) {
    const list = h("ol", { class: "history" });
    const box = block("审批流程记录（Step Functions）", list);
    try {
      const doc = await call("GET", "/v1/fleet-cases/" + encodeURIComponent(batchId) + "/history");
      const events = Array.isArray(doc) ? doc : doc.events || doc.history || [];
      list.append(
        ...events.map((e) =>
          h("li", {}, h("span", { class: "meta", text: web.chinaTime(e.at) + " " }), h("strong", { text: e.type }), e.state ? " · " + e.state : "", e.detail ? " · " + e.detail : ""),
        ),
      );
      if (!events.length) list.append(h("li", { class: "hint", text: "暂无记录" }));
    } catch (error) {
      list.append(h("li", { class: "error", text: web.asError(error).messageZh }));
    }
    return box;
  }

  // -------------------------------------------------------------------------------------------
  // 人工审核: a review case

  async function reviewCase(caseId, reason) {
    const q = reason ? "?reason=" + encodeURIComponent(reason) : "";
    const d = await call("GET", "/v1/review-cases/" + encodeURIComponent(caseId) + q);
    const c = d.case;
    const flow = d.flow;
    $("#case-title").textContent = "人工审核 · 审核编号 " + c.case_number;
    $("#case-sub").textContent = (PURPOSES[c.purpose] || c.purpose) + " · " + (REASONS[c.reason] || c.reason) + " · " + (REVIEW_STATUS[c.status] || c.status);
    const identity = flow.identity || {};
    const body = [
      revealBar((why) => reviewCase(caseId, why), reason),
      block(
        "案件",
        rows([
          ["提交时间", web.chinaTime(c.created_at)],
          ["状态", REVIEW_STATUS[c.status] || c.status],
          ["审核人", c.decided_by],
          ["办结时间", c.decided_at ? web.chinaTime(c.decided_at) : ""],
        ]),
      ),
      block(
        "填写的身份信息与证件识读",
        rows([
          ["证件类型", identity.id_type],
          ["姓名（填写）", identity.name],
          ["证件号码（填写）", identity.id_number],
          ["地址（填写）", identity.address],
          ...Object.entries(c.summary || {}).map(([k, v]) => ["识读/核验 · " + k, text(v)]),
        ]),
      ),
      block("核验结果", rows(Object.entries(flow.checks || {}).map(([k, v]) => [CHECKS[k] || k, verdictBadge(v)]))),
      block(
        "证件照片",
        h("p", { class: "hint", text: "照片由服务器加上审核人水印后显示，链接 60 秒有效，每次查看均登记。" }),
        h("ul", { class: "docs-list" }, Object.keys(d.documents || {}).map((k) => documentButton("review_case", caseId, k, DOCUMENTS[k] || k))),
      ),
      evidenceBlock(d.evidence),
    ];
    if (c.status === "open" && ctx.roles.includes("reviewer")) body.push(reviewDecision(caseId));
    $("#case-body").replaceChildren(...body.filter(Boolean));
  }

  function reviewDecision(caseId) {
    const note = h("textarea", { rows: "2", maxlength: "500", "data-field": "note" });
    const form = h(
      "form",
      { class: "decision", id: "decision-form" },
      h("h3", { text: "审核决定" }),
      h(
        "div",
        { class: "choices", role: "radiogroup" },
        h("label", {}, h("input", { type: "radio", name: "decision", value: "approve", required: true }), "通过"),
        h("label", {}, h("input", { type: "radio", name: "decision", value: "reject" }), "驳回"),
      ),
      h("label", { class: "field" }, h("span", { text: "说明（驳回时请写明原因）" }), note, h("em", { class: "field-error", hidden: true })),
      h("p", { class: "error", role: "alert", hidden: true }),
      h("button", { type: "submit", class: "primary", id: "decide", text: "提交决定" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = form.querySelector('input[name="decision"]:checked');
      web.busy($("#decide"), "提交中…", form, async () => {
        if (!chosen) throw web.refusal("decision", "请选择通过或驳回");
        const done = await call("POST", "/v1/review-cases/" + encodeURIComponent(caseId) + "/decision", {
          decision: chosen.value,
          note: note.value.trim() || null,
        });
        web.notice("已" + (DECISIONS[done.status === "approved" ? "approve" : "reject"] || "提交") + "，审核编号 " + done.case_number);
        await reviewCase(caseId);
      });
    });
    return form;
  }

  // -------------------------------------------------------------------------------------------
  // 企业批次: a fleet case

  async function reasonsCatalogue() {
    if (!reasonCodes) {
      const doc = await call("GET", "/v1/fleet-reasons");
      reasonCodes = Array.isArray(doc) ? doc : doc.reasons || [];
    }
    return reasonCodes;
  }

  function checkRow(check) {
    return h(
      "li",
      { class: "check-row", "data-check": check.name },
      h("div", { class: "head" }, h("span", { text: CHECKS[check.name] || check.name }), verdictBadge(check.verdict)),
      check.detail_zh || check.detail ? h("div", { class: "small", text: check.detail_zh || text(check.detail) }) : null,
      check.reason_code ? h("div", { class: "small muted", text: "原因代码 " + check.reason_code }) : null,
    );
  }

  /** OCR readings beside the typed values, field by field; a difference is marked. */
  function readingsBlock(readings) {
    if (!readings || !readings.length) return null;
    return block(
      "识读值与填写值",
      ...readings.map((r) => {
        const fields = Array.from(new Set([...Object.keys(r.typed || {}), ...Object.keys(r.read || {})]));
        return h(
          "table",
          { class: "readings", "data-document": r.document },
          h("caption", { text: DOCUMENTS[r.document] || r.document }),
          h("tr", {}, h("th", { text: "项目" }), h("th", { text: "识读值（OCR）" }), h("th", { text: "填写值" })),
          fields.map((f) => {
            const read = (r.read || {})[f];
            const typed = (r.typed || {})[f];
            const differs = read != null && typed != null && String(read) !== String(typed);
            return h("tr", { class: differs ? "differs" : "" }, h("td", { text: FIELDS[f] || f }), h("td", { text: read == null ? "—" : read }), h("td", { text: typed == null ? "—" : typed }));
          }),
        );
      }),
    );
  }

  async function fleetCase(batchId, reason) {
    const q = reason ? "?reason=" + encodeURIComponent(reason) : "";
    const d = await call("GET", "/v1/fleet-cases/" + encodeURIComponent(batchId) + q);
    const c = d.case || d;
    const batch = d.batch || {};
    $("#case-title").textContent = "企业批次 · " + (c.company_name || batch.company_name || c.uscc);
    $("#case-sub").textContent =
      (BATCH_KINDS[c.kind] || c.kind) + " · " + (c.vehicles || (batch.vins || []).length) + " 辆 · " + (BATCH_STATUS[c.status] || c.status);
    const deadline = c.deadline_at ? h("span", {}, web.chinaTime(c.deadline_at) + " · ", timer(h, c.deadline_at, c.overdue)) : "";
    const docs = d.documents || [];
    const face = d.face || null;
    const body = [
      revealBar((why) => fleetCase(batchId, why), reason),
      block(
        "批次",
        rows([
          ["企业", c.company_name || batch.company_name],
          ["统一社会信用代码", c.uscc || batch.uscc],
          ["类型", BATCH_KINDS[c.kind] || c.kind],
          ["车辆数", c.vehicles],
          ["状态", BATCH_STATUS[c.status] || c.status],
          ["审核环节", c.stage ? STAGES[c.stage] || c.stage : ""],
          ["轮次", c.round ? "第 " + c.round + " 轮" : ""],
          ["提交时间", c.submitted_at ? web.chinaTime(c.submitted_at) : ""],
          ["审核时限", deadline],
          ["已升级", c.escalated ? h("span", { class: "badge bad", text: "已升级至组长" }) : ""],
          ["责任人", batch.responsible_name_masked],
        ]),
      ),
      block("自动核验", h("ul", { class: "checks" }, (d.checks || []).map(checkRow))),
      readingsBlock(d.readings),
      block(
        "责任人与人脸核验",
        rows([
          ["姓名", (d.identity || {}).name || batch.responsible_name_masked],
          ["证件号码", (d.identity || {}).id_number],
          ["手机号已验证", batch.responsible_phone_verified ? "是" : "否"],
          ["人脸核验", face ? verdictBadge(face) : "未完成"],
        ]),
      ),
      block(
        "材料",
        h("p", { class: "hint", text: "照片由服务器加上审核人水印后显示，链接 60 秒有效，每次查看均登记。" }),
        h(
          "ul",
          { class: "docs-list" },
          docs.map((doc) => {
            const slot = doc.slot || doc.document || doc;
            const label = (DOCUMENTS[slot] || slot) + (doc.present === false ? "（未上传）" : doc.readable === false ? "（无法识读）" : "");
            if (doc.present === false) return h("li", { class: "doc-item" }, h("span", { text: label }));
            return documentButton("fleet_case", batchId, slot, label);
          }),
        ),
      ),
      (d.decisions || []).length
        ? block(
            "审核记录",
            h(
              "ol",
              { class: "decisions" },
              d.decisions.map((x) =>
                h(
                  "li",
                  {},
                  web.chinaTime(x.at) + " · 第 " + x.round + " 轮 · " + (STAGES[x.stage] || x.stage) + " · " + x.by + " · ",
                  h("strong", { text: DECISIONS[x.decision] || x.decision }),
                  x.late ? h("span", { class: "badge bad", text: "逾期" }) : null,
                  (x.reason_codes || []).length ? h("div", { class: "small", text: "原因：" + x.reason_codes.map((r) => r.zh || r.code || r).join("；") }) : null,
                  (x.documents || []).length ? h("div", { class: "small", text: "需补充：" + x.documents.map((k) => DOCUMENTS[k] || k).join("、") }) : null,
                  x.note ? h("div", { class: "small", text: "备注：" + x.note }) : null,
                ),
              ),
            ),
          )
        : null,
      evidenceBlock({ chain: d.evidence_chain, entries: d.evidence || [] }),
      await historyBlock(batchId),
    ];
    const awaiting = d.awaiting_decision !== undefined ? d.awaiting_decision : c.status === "in_review";
    if (awaiting && ctx.roles.some((r) => r === "reviewer" || r === "review_lead")) {
      body.push(await fleetDecision(batchId, c, docs));
    }
    $("#case-body").replaceChildren(...body.filter(Boolean));
  }

  async function fleetDecision(batchId, c, docs) {
    const catalogue = await reasonsCatalogue();
    const reasonsBox = h("div", { class: "choices reason-codes", "data-field": "reason_codes" });
    const slots = docs.map((d) => d.slot || d).filter(Boolean);
    const docsBox = h(
      "div",
      { class: "choices", "data-field": "documents" },
      slots.map((s) => h("label", {}, h("input", { type: "checkbox", name: "documents", value: s }), DOCUMENTS[s] || s)),
    );
    const docsField = h("fieldset", { class: "field", hidden: true }, h("legend", { text: "需重新提交的材料" }), docsBox, h("em", { class: "field-error", hidden: true }));
    const note = h("textarea", { rows: "2", maxlength: "500", "data-field": "note" });
    const form = h(
      "form",
      { class: "decision", id: "decision-form" },
      h("h3", { text: "审核决定" + (c.stage ? "（" + (STAGES[c.stage] || c.stage) + "）" : "") }),
      h(
        "div",
        { class: "choices", role: "radiogroup", "data-field": "decision" },
        Object.entries(DECISIONS).map(([value, label]) => h("label", {}, h("input", { type: "radio", name: "decision", value }), label)),
      ),
      h("fieldset", { class: "field" }, h("legend", { text: "原因" }), reasonsBox, h("em", { class: "field-error", hidden: true })),
      docsField,
      h("label", { class: "field" }, h("span", { text: "备注" }), note, h("em", { class: "field-error", hidden: true })),
      h("p", { class: "error", role: "alert", hidden: true }),
      h("button", { type: "submit", class: "primary", id: "decide", text: "提交决定" }),
    );
    function showReasons() {
      const chosen = form.querySelector('input[name="decision"]:checked');
      const decision = chosen ? chosen.value : "";
      const fitting = catalogue.filter((r) => !decision || !r.decision || r.decision === decision);
      reasonsBox.replaceChildren(
        ...fitting.map((r) =>
          h("label", { title: r.en }, h("input", { type: "checkbox", name: "reason_codes", value: r.code }), r.zh + (r.resubmittable ? "（可补正）" : "")),
        ),
      );
      docsField.hidden = decision !== "resubmit";
    }
    form.addEventListener("change", (event) => {
      if (event.target.name === "decision") showReasons();
      if (event.target.name === "reason_codes" && event.target.checked) {
        // A reason about one document names it for resubmission too.
        const reason = catalogue.find((r) => r.code === event.target.value);
        const slot = reason && reason.slot && form.querySelector('input[name="documents"][value="' + reason.slot + '"]');
        if (slot) slot.checked = true;
      }
    });
    showReasons();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = form.querySelector('input[name="decision"]:checked');
      web.busy($("#decide"), "提交中…", form, async () => {
        if (!chosen) throw web.refusal("decision", "请选择审核决定");
        const body = {
          decision: chosen.value,
          reason_codes: Array.from(form.querySelectorAll('input[name="reason_codes"]:checked')).map((i) => i.value),
        };
        if (chosen.value === "resubmit") body.documents = Array.from(form.querySelectorAll('input[name="documents"]:checked')).map((i) => i.value);
        if (note.value.trim()) body.note = note.value.trim();
        await call("POST", "/v1/fleet-cases/" + encodeURIComponent(batchId) + "/decision", body);
        web.notice("已提交：" + DECISIONS[chosen.value]);
        await fleetCase(batchId);
      });
    });
    return form;
  }

  // -------------------------------------------------------------------------------------------
  // 抽查: a spot check, with the registration's documents and evidence, and the answer

  async function spotCheck(checkId, reason) {
    const q = reason ? "?reason=" + encodeURIComponent(reason) : "";
    const d = await call("GET", "/v1/spot-checks/" + encodeURIComponent(checkId) + q);
    const c = d.check;
    $("#case-title").textContent = "抽查 · " + c.iccid;
    $("#case-sub").textContent = (c.operator || "") + " · " + (SPOT_STATUS[c.status] || c.status);
    const documents = [];
    for (const evidence of d.evidence || []) {
      const kinds = new Set();
      for (const e of evidence.entries || []) {
        const doc = e.public && e.public.document;
        if (e.kind === "upload_accepted" && doc) kinds.add(doc);
      }
      for (const k of kinds) documents.push(documentButton("spot_check", checkId, k, (DOCUMENTS[k] || k) + " · " + evidence.flow_id.slice(0, 8), evidence.flow_id));
    }
    const body = [
      revealBar((why) => spotCheck(checkId, why), reason),
      block(
        "抽查",
        rows([
          ["运营商", c.operator],
          ["ICCID", c.iccid],
          ["原因", c.reason_zh || c.reason_code],
          ["收到时间", web.chinaTime(c.received_at)],
          ["答复时限", h("span", {}, web.chinaTime(c.due_at) + " · ", c.status === "open" ? timer(h, c.due_at, c.overdue) : "")],
          ["答复", c.verdict ? (c.verdict === "confirmed" ? "核实无误" : "存在不一致") + (c.note ? "：" + c.note : "") : ""],
        ]),
      ),
      block("证件照片", h("ul", { class: "docs-list" }, documents)),
      ...(d.evidence || []).map(evidenceBlock),
    ];
    if (c.status === "open" && ctx.roles.includes("reviewer")) body.push(spotAnswer(checkId));
    $("#case-body").replaceChildren(...body.filter(Boolean));
  }

  function spotAnswer(checkId) {
    const note = h("textarea", { rows: "2", maxlength: "500", "data-field": "note" });
    const form = h(
      "form",
      { class: "decision", id: "decision-form" },
      h("h3", { text: "答复运营商" }),
      h(
        "div",
        { class: "choices" },
        h("label", {}, h("input", { type: "radio", name: "verdict", value: "confirmed" }), "核实无误"),
        h("label", {}, h("input", { type: "radio", name: "verdict", value: "discrepancy" }), "存在不一致"),
      ),
      h("label", { class: "field" }, h("span", { text: "说明（存在不一致时必填）" }), note, h("em", { class: "field-error", hidden: true })),
      h("p", { class: "error", role: "alert", hidden: true }),
      h("button", { type: "submit", class: "primary", id: "decide", text: "提交答复" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = form.querySelector('input[name="verdict"]:checked');
      web.busy($("#decide"), "提交中…", form, async () => {
        if (!chosen) throw web.refusal("verdict", "请选择答复");
        await call("POST", "/v1/spot-checks/" + encodeURIComponent(checkId) + "/answer", { verdict: chosen.value, note: note.value.trim() || null });
        web.notice("已答复运营商");
        await spotCheck(checkId);
      });
    });
    return form;
  }

  // -------------------------------------------------------------------------------------------

  $("#viewer-close").addEventListener("click", closeViewer);
  $("#viewer").addEventListener("click", (event) => {
    if (event.target.id === "viewer") closeViewer();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("#viewer").hidden) closeViewer();
  });

  const PAGES = { review: reviewCase, fleet: fleetCase, spot: spotCheck };

  /** Show one case (kind: review | fleet | spot). */
  async function open(kind, id) {
    closeViewer();
    $("#case-title").textContent = "";
    $("#case-sub").textContent = "正在加载…";
    $("#case-body").replaceChildren();
    web.clearErrors(scope());
    try {
      await PAGES[kind](id);
    } catch (error) {
      $("#case-sub").textContent = "";
      web.showError(error, scope());
    }
  }

  return { open };
}
