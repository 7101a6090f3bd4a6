/* The console's Chinese names of the API's codes, and the SLA timer (time left to a deadline, red once
 * past it) shared by the queues and the case pages. */

export const PURPOSES = {
  registration: "实名登记",
  deregistration: "实名注销",
  delegated_registration: "委托登记",
  delegation_owner: "委托登记（车主核验）",
  enterprise_registration: "单位登记",
  enterprise_deregistration: "单位注销",
  account_verification: "账号实名认证",
};

export const REASONS = {
  face_attempts_exhausted: "人脸核验次数用完",
  authority_unavailable: "身份核验服务暂不可用",
  face_duplicate: "人脸已用于其他身份",
  possession_contested: "车辆归属有争议",
  authority_not_covered: "证件需人工核验",
  document_not_machine_readable: "证件需人工识读",
  real_name: "账号实名认证",
};

/** 人脸人工审核: the cases a reviewer has because of the face; the others are 人工实名认证. */
export const FACE_REASONS = new Set(["face_attempts_exhausted", "face_duplicate"]);

export const REVIEW_STATUS = { open: "待审核", approved: "已通过", rejected: "已驳回" };

export const BATCH_KINDS = { registration: "单位车辆实名登记", deregistration: "单位车辆解除登记" };

export const BATCH_STATUS = {
  draft: "草稿",
  submitted: "已提交，自动核验中",
  in_review: "审核中",
  resubmission_requested: "待补充材料",
  approved: "审核通过，登记中",
  completed: "已完成",
  rejected: "已驳回",
  expired: "已过期",
};

export const STAGES = { first: "初审", second: "复核（双人审核）", lead: "组长处理（已升级）" };

export const DECISIONS = { approve: "通过", reject: "驳回", resubmit: "退回补充材料" };

export const DOCUMENTS = {
  id_front: "身份证件人像面",
  id_back: "身份证件国徽面",
  business_licence: "营业执照",
  authorization_letter: "授权委托书",
  custody_agreement: "车卡保管协议",
  responsible_id_front: "责任人证件人像面",
  responsible_id_back: "责任人证件国徽面",
  owner_id_front: "车主证件人像面",
  owner_id_back: "车主证件国徽面",
  vehicle_licence: "机动车行驶证",
  purchase_invoice: "机动车销售统一发票",
  onsite_photo: "现场照片",
  live_capture: "活体采集照片",
};

export const VERDICTS = {
  passed: "通过",
  failed: "未通过",
  warning: "需留意",
  skipped: "未执行",
  pending: "待定",
  in_review: "待人工审核",
  approved: "人工审核通过",
  rejected: "人工审核未通过",
  review: "需人工审核",
  resubmit: "需补充材料",
  ok: "通过",
};

/** The checks of a flow and of a batch, by name. */
export const CHECKS = {
  face: "人脸核验",
  authority: "身份信息联网核验",
  ocr_id_front: "证件人像面识读",
  ocr_id_back: "证件国徽面识读",
  possession: "车辆归属",
  uscc: "统一社会信用代码",
  company_name: "企业名称与营业执照",
  documents: "材料齐全且可识读",
  cards_per_id: "责任人名下卡数（一证十卡）",
  vehicles: "车辆可办理",
};

/** The fields of a reading (OCR beside typed). */
export const FIELDS = {
  name: "姓名",
  id_number: "证件号码",
  id_type: "证件类型",
  address: "地址",
  uscc: "统一社会信用代码",
  company_name: "企业名称",
  valid_until: "有效期至",
};

export const SPOT_STATUS = { open: "待答复", answered: "已答复" };

export const COMPLAINT_STATUS = { received: "待处理", in_progress: "处理中", closed: "已办结" };

function span(minutes) {
  const m = Math.max(0, Math.round(minutes));
  const days = Math.floor(m / 1440);
  const hours = Math.floor((m % 1440) / 60);
  const mins = m % 60;
  if (days) return days + " 天 " + hours + " 小时";
  if (hours) return hours + " 小时 " + mins + " 分";
  return mins + " 分钟";
}

/** The SLA text of a deadline: "剩余 …" or "已超时 …" (with the element's class saying which). */
export function slaText(deadline, now) {
  const left = (new Date(deadline).getTime() - (now || Date.now())) / 60000;
  return left >= 0 ? { text: "剩余 " + span(left), overdue: false } : { text: "已超时 " + span(-left), overdue: true };
}

/** An element counting down to `deadline` (refreshed by `tickTimers`), red once overdue. */
export function timer(h, deadline, overdue) {
  if (!deadline) return null;
  const el = h("span", { class: "sla", "data-deadline": deadline, "data-overdue": overdue ? "1" : null });
  paint(el);
  return el;
}

function paint(el) {
  const sla = slaText(el.dataset.deadline);
  const overdue = sla.overdue || el.dataset.overdue === "1"; // the server says so (a deadline moved)
  el.textContent = overdue && !sla.overdue ? "已超时" : sla.text;
  el.classList.toggle("overdue", overdue);
}

/** Every SLA timer on the page, told again (once a minute). */
export function tickTimers() {
  for (const el of document.querySelectorAll(".sla[data-deadline]")) paint(el);
}
