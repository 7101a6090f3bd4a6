/* The face step of a verification flow (人脸检测 / 人证一致) for a page other than the H5 client's own
 * screens: the separate biometric consent, the liveness challenge in front of the camera (the server
 * guides the face into the oval from small preview frames, the burst goes up once the turn is seen),
 * photos chosen instead where no camera can be opened, and the match with the ID portrait. It drives a
 * section holding the same elements as the H5 client's face screen (#face-consent, #face-camera,
 * #face-instruction, #face-result…), and the same routes (/v1/flows/{id}/liveness-sessions…).
 * Needs api.js and ui.js first. */
"use strict";

(function (web) {
  const { $, h } = web;
  const DIRECTIONS = {
    left: ["请向右转头", "→"],
    right: ["请向左转头", "←"],
    up: ["请抬头", "↑"],
    down: ["请低头", "↓"],
  };
  const REASONS = {
    "liveness.no_face": "未检测到人脸，请正对镜头，保持光线充足",
    "liveness.several_faces": "画面中有多张人脸，请确保只有本人入镜",
    "liveness.not_same_person": "检测过程中人员发生了变化",
    "liveness.identical_frames": "画面没有变化，请按提示转动头部",
    "liveness.no_pose_change": "未检测到头部转动，请按提示缓慢转头",
    "liveness.wrong_direction": "转头方向与提示不一致",
    "liveness.not_continuous": "画面不连贯，请在同一位置一次完成拍摄，不要切换画面",
    "liveness.nonce": "检测会话不匹配，请重新开始检测",
    "liveness.timestamps": "拍摄时间不连贯，请按提示一次完成拍摄",
    "liveness.low_confidence": "活体检测未通过，请在光线充足处重试",
    "liveness.failed": "活体检测未通过",
    "face.no_match": "人脸与身份证照片不一致",
    "face.duplicate": "该人脸已用于其他身份，请本人办理或联系客服",
    "authority.portrait_mismatch": "人脸与公安系统登记的照片不一致",
    "authority.unavailable": "身份核验服务暂时无法回应，请稍后再试",
    "authority.not_found": "未能核实该身份信息，请核对证件后重试",
    "authority.not_passed": "身份信息核验未通过，请核对证件信息",
  };
  const FRAME_MS = 450;
  const TURN_WAIT_MS = 8000;
  const TURN_SEEN_DEGREES = { yaw: 14, pitch: 16 };
  const PREVIEW_SIDE = 320;
  const STEADY_PREVIEWS = 2;
  const FRONTAL_DEGREES = 15;
  const MAX_FRAME_BYTES = 1024 * 1024;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * The face step in `section` for the flow `flowId`, calling the API through `client`.
   * `passed()` runs once the face matched; `review()`, when given, sends the flow to a reviewer
   * (else the flow's own review route is asked).
   * Answers {start, stop}: start() asks for the consent or a session; stop() closes the camera.
   */
  function faceStep({ client, section, flowId, passed, review }) {
    let camera = null;
    let run = 0;
    let session = null;
    let consentDoc = null;
    const el = (id) => $("#" + id, section);
    const flowPath = () => "/v1/flows/" + encodeURIComponent(flowId());
    const showError = (error) => web.showError(error, section);

    function stop() {
      run += 1;
      if (camera) {
        for (const track of camera.getTracks()) track.stop();
        camera = null;
      }
      const video = el("face-video");
      video.srcObject = null;
      video.hidden = true;
      const stage = $(".face-stage", section);
      stage.classList.remove("live");
      delete stage.dataset.guide;
      el("face-guide").hidden = true;
      section.dataset.phase = "";
    }

    function buttons(mode) {
      const canCamera = Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
      el("face-camera").hidden = mode !== "ready" || !canCamera;
      el("face-files-label").hidden = mode !== "ready" || canCamera;
      el("face-retry").hidden = mode !== "retry";
      el("face-review").hidden = mode !== "review" && mode !== "retry-review";
    }

    function result(ok, title, reasons) {
      const box = el("face-result");
      box.className = "face-result " + (ok ? "ok" : "bad");
      const parts = [h("strong", { text: title })];
      if (reasons && reasons.length) parts.push(h("ul", {}, reasons.map((r) => h("li", { text: REASONS[r] || "核验未通过" }))));
      box.replaceChildren(...parts);
      box.hidden = false;
    }

    function guide(text, kind) {
      el("face-guide").textContent = text;
      el("face-guide").hidden = !text;
      $(".face-stage", section).dataset.guide = kind || "";
    }

    function attemptsLeft(left) {
      el("face-attempts").textContent = left === undefined || left === null ? "" : "剩余 " + left + " 次核验机会";
    }

    async function start() {
      stop();
      web.clearErrors(section);
      el("face-result").hidden = true;
      el("face-consent").hidden = true;
      buttons("none");
      let flow;
      try {
        flow = await client.call("GET", flowPath());
      } catch (error) {
        showError(error);
        return;
      }
      if (flow.checks && flow.checks.biometric_consent === "passed") await newSession();
      else await showConsent();
    }

    async function showConsent() {
      el("face-instruction").textContent = "开始人脸检测前，请阅读并单独同意人脸信息处理";
      try {
        consentDoc = (await client.call("GET", "/v1/consents")).documents.find((d) => d.kind === "biometric_consent");
      } catch (error) {
        showError(error);
        return;
      }
      el("face-consent-title").textContent = "单独同意 · " + consentDoc.title + "（" + consentDoc.version + "）";
      el("face-consent-text").replaceChildren(
        ...String(consentDoc.text)
          .split(/\n{2,}/)
          .map((p) => h("p", { text: p.replace(/^#+\s*/, "").replace(/\*\*/g, "") })),
      );
      el("face-consent-check").checked = false;
      el("face-consent-submit").disabled = true;
      el("face-consent").hidden = false;
    }

    async function giveConsent() {
      await web.busy(el("face-consent-submit"), "提交中…", section, async () => {
        const info = { user_agent: navigator.userAgent.slice(0, 300), screen: screen.width + "x" + screen.height };
        await client.call("POST", flowPath() + "/biometric-consent", {
          version: consentDoc.version,
          sha256: consentDoc.sha256,
          client: info,
        });
        el("face-consent").hidden = true;
        await newSession();
      });
    }

    async function newSession() {
      session = null;
      section.dataset.direction = "";
      el("face-instruction").textContent = "正在准备…";
      el("face-arrow").textContent = "";
      attemptsLeft(null);
      try {
        const opened = await client.call("POST", flowPath() + "/liveness-sessions");
        const direction = opened.challenge && opened.challenge.direction;
        if (!direction || !DIRECTIONS[direction]) {
          el("face-instruction").textContent = "当前环境暂不支持人脸检测";
          return;
        }
        session = opened;
        section.dataset.direction = direction;
        section.dataset.session = opened.session_id;
        ready();
        attemptsLeft(opened.attempts_left);
      } catch (error) {
        const err = web.asError(error);
        el("face-instruction").textContent = "暂时无法进行人脸检测";
        showError(err);
        buttons(err.status === 429 || err.code === "face.attempts_exhausted" ? "review" : "retry");
      }
    }

    function ready() {
      const direction = session.challenge.direction;
      const min = session.challenge.min_frames || 3;
      const max = session.challenge.max_frames || 8;
      el("face-instruction").textContent = DIRECTIONS[direction][0];
      el("face-arrow").textContent = DIRECTIONS[direction][1];
      el("face-camera").textContent = "开始人脸检测";
      el("face-how").hidden = false;
      el("face-how").textContent = "打开摄像头后，把脸放进圆框、正对屏幕，检测会自动开始。";
      el("face-files-text").textContent =
        "无法打开摄像头时，请连拍 " + min + "–" + max + " 张自拍：先正对镜头，再慢慢" +
        DIRECTIONS[direction][0].replace("请", "") + "，然后一起选择上传。";
      buttons("ready");
    }

    function again() {
      if (!session) return;
      ready();
      el("face-camera").textContent = "再试一次";
    }

    async function withCamera() {
      if (!session) return;
      const button = el("face-camera");
      button.disabled = true;
      web.clearErrors(section);
      el("face-result").hidden = true;
      try {
        camera = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
          audio: false,
        });
      } catch (_) {
        button.disabled = false;
        button.hidden = true;
        el("face-files-label").hidden = false;
        showError(web.refusal("camera", "无法打开摄像头。请在浏览器设置中允许使用摄像头，或按下方说明连拍照片上传"));
        return;
      }
      const mine = run;
      const video = el("face-video");
      video.srcObject = camera;
      video.hidden = false;
      $(".face-stage", section).classList.add("live");
      buttons("none");
      try {
        await video.play();
        await videoReady(video);
        await lineUp(video, mine);
        const burst = await captureTurn(video, mine);
        stop();
        await send(burst.frames, burst.times);
      } catch (error) {
        if (mine !== run && !(error instanceof web.ApiError)) return; // the page moved on
        stop();
        const err = web.asError(error);
        if (!refused(err)) {
          showError(err);
          again();
        }
      } finally {
        button.disabled = false;
      }
    }

    function videoReady(video, timeoutMs = 5000) {
      const started = Date.now();
      return new Promise((resolve, reject) => {
        (function check() {
          if (video.readyState >= 2 && video.videoWidth > 0) return resolve();
          if (Date.now() - started > timeoutMs) {
            return reject(web.refusal("camera", "摄像头没有画面，请点“再试一次”重新打开摄像头"));
          }
          setTimeout(check, 50);
        })();
      });
    }

    function stillRunning(mine) {
      if (mine !== run || !camera) throw new Error("camera stopped");
    }

    async function preview(frame) {
      const path = flowPath() + "/liveness-sessions/" + encodeURIComponent(session.session_id) + "/preview";
      const seen = await client.call("POST", path, { frame });
      section.dataset.previews = String(Number(section.dataset.previews || 0) + 1);
      return seen;
    }

    function moved(a, b) {
      const centre = (box) => [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
      const [ax, ay] = centre(a.box);
      const [bx, by] = centre(b.box);
      return Math.hypot(ax - bx, ay - by) > 0.06 || Math.abs(a.size - b.size) > 0.08;
    }

    async function lineUp(video, mine) {
      section.dataset.phase = "align";
      el("face-instruction").textContent = "先对准圆框，正对屏幕";
      el("face-arrow").textContent = "";
      el("face-how").hidden = true;
      guide("正在识别…", "wait");
      let steady = 0;
      let last = null;
      for (;;) {
        stillRunning(mine);
        const seen = await preview(snapshot(video, PREVIEW_SIDE, 0.7));
        stillRunning(mine);
        let text = seen.message_zh;
        let ok = seen.guidance === "ok";
        if (ok && Math.abs(seen.yaw) > FRONTAL_DEGREES) {
          ok = false;
          text = "请正对屏幕";
        }
        if (ok && last && moved(last, seen)) {
          ok = false;
          text = "请保持不动";
        }
        last = seen.guidance === "ok" ? seen : null;
        steady = ok ? steady + 1 : 0;
        guide(text, ok ? "ok" : "warn");
        if (steady >= STEADY_PREVIEWS) return;
        await sleep(250);
      }
    }

    async function captureTurn(video, mine) {
      const direction = session.challenge.direction;
      const [text, arrow] = DIRECTIONS[direction];
      const axis = direction === "left" || direction === "right" ? "yaw" : "pitch";
      const sign = direction === "right" || direction === "up" ? 1 : -1;
      const max = session.challenge.max_frames || 8;
      const min = session.challenge.min_frames || 3;
      section.dataset.phase = "turn";
      el("face-instruction").textContent = text;
      el("face-arrow").textContent = arrow;
      guide("", "turn");
      const frames = [];
      const smalls = [];
      const times = [];
      const started = Date.now();
      let start = null;
      let seenAt = -1;
      let previewed = -1;
      let timer = 0;
      const take = () => {
        if (mine !== run || !camera) return;
        frames.push(snapshot(video, 640, 0.9));
        smalls.push(snapshot(video, PREVIEW_SIDE, 0.7));
        times.push(Date.now());
        timer = setTimeout(take, FRAME_MS);
      };
      take();
      try {
        while (Date.now() - started < TURN_WAIT_MS) {
          stillRunning(mine);
          const index = frames.length - 1;
          if (index <= previewed) {
            await sleep(60);
            continue;
          }
          previewed = index;
          const seen = await preview(smalls[index]);
          stillRunning(mine);
          if (seen.faces !== 1) {
            guide(seen.message_zh, "warn");
            continue;
          }
          const angle = seen[axis];
          if (start === null || Math.abs(angle) < Math.abs(start)) start = angle;
          if (sign * (angle - start) >= TURN_SEEN_DEGREES[axis] && index >= min - 1) {
            seenAt = index;
            break;
          }
        }
      } finally {
        clearTimeout(timer);
      }
      stillRunning(mine);
      let end = frames.length;
      if (seenAt >= 0) {
        if (frames.length < seenAt + 2) {
          frames.push(snapshot(video, 640, 0.9));
          times.push(Date.now());
        }
        end = seenAt + 2;
        guide("很好", "ok");
      }
      const from = Math.max(0, end - max);
      section.dataset.turnSeen = seenAt >= 0 ? "yes" : "no";
      return { frames: frames.slice(from, end), times: times.slice(from, end) };
    }

    function snapshot(video, side, quality) {
      const scale = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      return canvas.toDataURL("image/jpeg", quality).split(",")[1];
    }

    async function onFiles(input) {
      const files = Array.from(input.files || []);
      input.value = "";
      if (!session || !files.length) return;
      web.clearErrors(section);
      const min = session.challenge.min_frames || 3;
      const max = session.challenge.max_frames || 8;
      if (files.length < min || files.length > max) {
        showError(web.refusal("frames", "请选择连拍的 " + min + "–" + max + " 张自拍（已选 " + files.length + " 张）"));
        return;
      }
      buttons("none");
      el("face-instruction").textContent = "正在读取照片…";
      try {
        const frames = [];
        for (const file of files) {
          const ok = file.type === "image/jpeg" && file.size <= MAX_FRAME_BYTES;
          frames.push(await web.base64(ok ? file : await web.reencode(file, 960, 0.85)));
        }
        await send(frames, files.map((file) => file.lastModified));
      } catch (error) {
        showError(error);
        ready();
      }
    }

    function refused(err) {
      if (!err.code || !/^(liveness|face)\./.test(err.code)) return false;
      showError(err);
      el("face-arrow").textContent = "";
      if (err.code === "face.attempts_exhausted" || err.status === 429) {
        el("face-instruction").textContent = "暂时无法继续核验";
        buttons(err.code === "liveness.previews_exhausted" ? "retry" : "review");
      } else if (/^liveness\.session_(expired|used|unknown)$/.test(err.code) || err.code === "liveness.flow_changed") {
        newSession();
      } else if (err.code === "liveness.capture_problem" || /^liveness\.(frame|frames_count|preview)/.test(err.code)) {
        again();
        if (err.details && typeof err.details.attempts_left === "number") attemptsLeft(err.details.attempts_left);
      } else {
        el("face-instruction").textContent = "核验未完成";
        buttons("retry");
      }
      return true;
    }

    async function send(frames, times) {
      section.dataset.phase = "sending";
      el("face-instruction").textContent = "正在核验，请稍候…";
      el("face-arrow").textContent = "…";
      attemptsLeft(null);
      let outcome;
      try {
        outcome = await client.call(
          "POST",
          flowPath() + "/liveness-sessions/" + encodeURIComponent(session.session_id) + "/result",
          { frames, nonce: session.challenge.nonce || null, timestamps_ms: times },
        );
      } catch (error) {
        section.dataset.phase = "";
        const err = web.asError(error);
        if (!refused(err)) {
          showError(err);
          el("face-instruction").textContent = "核验未完成";
          buttons("retry");
        }
        return;
      }
      section.dataset.phase = "";
      session = null;
      if (outcome.passed) {
        el("face-instruction").textContent = "人脸核验通过";
        el("face-arrow").textContent = "✓";
        result(true, "人脸核验通过", []);
        await sleep(600);
        await passed();
        return;
      }
      el("face-instruction").textContent = "人脸核验未通过";
      el("face-arrow").textContent = "";
      const left = outcome.attempts_left;
      result(false, "人脸核验未通过" + (left > 0 ? "，还可以再试 " + left + " 次" : "，核验次数已用完"), outcome.reasons);
      if (outcome.review_available) buttons(left > 0 ? "retry" : "retry-review");
      else buttons(left > 0 ? "retry" : "none");
    }

    async function askReview() {
      await web.busy(el("face-review"), "提交中…", section, async () => {
        // The page's own way to a reviewer (an account's 人工实名认证), else the flow's review.
        if (review) await review();
        else await client.call("POST", flowPath() + "/review");
      });
    }

    el("face-consent-check").addEventListener("change", (e) => (el("face-consent-submit").disabled = !e.target.checked));
    el("face-consent-submit").addEventListener("click", giveConsent);
    el("face-camera").addEventListener("click", withCamera);
    el("face-files").addEventListener("change", (e) => onFiles(e.target));
    el("face-retry").addEventListener("click", () => start());
    el("face-review").addEventListener("click", askReview);
    return { start, stop };
  }

  web.faceStep = faceStep;
})((window.ChekaWeb = window.ChekaWeb || {}));
