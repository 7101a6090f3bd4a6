/* Photos into a verification flow, for every web client (the H5 client, the portal): scaled and
 * compressed in the browser to what the platform needs, sent straight to storage through a presigned
 * form (with progress and cancel; on a weak network resumed once the connection is back), then
 * checked by the server (POST /v1/flows/{id}/documents). Needs api.js. */
"use strict";

(function (web) {
  const UPLOAD = { longSide: 1600, quality: 0.85 };
  const TYPES = ["image/jpeg", "image/png", "image/bmp"];

  async function decode(file) {
    if (window.createImageBitmap) {
      try {
        return await createImageBitmap(file, { imageOrientation: "from-image" });
      } catch (_) {
        // an <img> below
      }
    }
    const url = URL.createObjectURL(file);
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      return img;
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  /** The picture as JPEG, its long side at most `longSide`. */
  async function reencode(file, longSide, quality) {
    let image;
    try {
      image = await decode(file);
    } catch (_) {
      throw new web.ApiError(415, { code: "client.unreadable", message_zh: "无法读取该照片，请换一张 JPG 或 PNG 照片" });
    }
    const scale = Math.min(1, longSide / Math.max(image.width, image.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(image.width * scale);
    canvas.height = Math.round(image.height * scale);
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    if (image.close) image.close();
    return await new Promise((resolve, reject) =>
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("toBlob"))), "image/jpeg", quality),
    );
  }

  /** The photo as the platform needs it: a JPEG already smaller than the re-encoded one goes as taken. */
  async function compress(file) {
    let blob;
    try {
      blob = await reencode(file, UPLOAD.longSide, UPLOAD.quality);
    } catch (error) {
      if (TYPES.includes(file.type)) return { blob: file, type: file.type }; // the server decides
      throw error;
    }
    if (file.type === "image/jpeg" && file.size <= blob.size) return { blob: file, type: file.type };
    return { blob, type: "image/jpeg" };
  }

  function base64(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",")[1]);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Uploads for weak networks: the presigned POST by XMLHttpRequest (progress, cancel), the blob kept;
  // with `resume`, it waits for the network and tries again (a presigned form that expired is asked
  // for again). One upload at a time: a new one cancels the one in progress.
  let uploading = null; // the upload in progress: {cancelled, xhr, wake}

  function cancelled() {
    return new web.ApiError(499, { code: "upload.cancelled", message_zh: "已取消上传，可重新选择照片" });
  }

  /** Stop the upload in progress; its storePhoto rejects with code `upload.cancelled`. */
  function cancelUpload() {
    const job = uploading;
    if (!job) return;
    job.cancelled = true;
    if (job.xhr) job.xhr.abort();
    if (job.wake) job.wake();
  }

  /**
   * Send `blob` with the form `presign()` gives, until it is stored, refused or cancelled; its key.
   * `view` hears the upload: start(bytes), progress(fraction), note(state, text), end() (each optional).
   * Without `resume` a dropped connection rejects (code `upload.network`).
   */
  async function sendToStorage(presign, blob, view, resume) {
    const tell = (name, ...args) => view && view[name] && view[name](...args);
    const job = { cancelled: false, xhr: null, wake: null };
    if (uploading) cancelUpload();
    uploading = job;
    tell("start", blob.size);
    let post = null;
    let postAt = 0;
    let delay = 1000;
    let refusals = 0;
    try {
      for (;;) {
        if (job.cancelled) throw cancelled();
        try {
          if (!post || Date.now() - postAt > (post.expires_in - 20) * 1000) {
            post = await presign();
            postAt = Date.now();
            if (blob.size > post.max_bytes) {
              throw new web.ApiError(413, {
                code: "client.too_large",
                message_zh: "图片过大，不能超过 " + Math.floor(post.max_bytes / 1048576) + " MB",
              });
            }
          }
          await postForm(job, post, blob, (share) => tell("progress", share), resume);
          tell("progress", 1);
          return post.key;
        } catch (error) {
          const err = web.asError(error);
          if (job.cancelled) throw cancelled();
          if (err.code === "upload.expired" && refusals++ < 2) {
            post = null; // the form expired while the network was away: a new one
            continue;
          }
          if (err.status !== 0 || !resume) throw err;
          tell("note", "waiting", "网络中断，恢复后将自动继续上传");
          await waitForNetwork(job, delay);
          delay = Math.min(delay * 2, 30000);
          if (!job.cancelled) tell("note", "sending", "网络已恢复，正在继续上传…");
        }
      }
    } finally {
      if (uploading === job) uploading = null;
      tell("end");
    }
  }

  /** POST the presigned form and the photo to storage (its CORS rules let the page read the answer). */
  function postForm(job, post, blob, progress, resume) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(post.fields)) form.append(name, value);
      form.append("file", blob, "photo");
      const xhr = new XMLHttpRequest();
      const dropped = () =>
        new web.ApiError(0, {
          code: "upload.network",
          message_zh: resume ? "网络中断，照片未上传完成" : "网络中断，照片未上传完成，请重新选择照片",
        });
      const offline = () => xhr.abort(); // a connection the phone lost does not always error by itself
      const done = () => {
        job.xhr = null;
        window.removeEventListener("offline", offline);
      };
      job.xhr = xhr;
      window.addEventListener("offline", offline);
      xhr.open("POST", post.url);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable && e.total && progress) progress(e.loaded / e.total);
      };
      xhr.onload = () => {
        done();
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else if (xhr.status === 403) {
          reject(new web.ApiError(403, { code: "upload.expired", message_zh: "上传已过期，请重试" }));
        } else {
          reject(new web.ApiError(xhr.status, { code: "upload.refused", message_zh: "照片未能上传，请重新选择照片" }));
        }
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = () => {
        done();
        reject(job.cancelled ? cancelled() : dropped());
      };
      xhr.send(form);
    });
  }

  /** Resolves once the network is back (the `online` event, or a look after `delay` ms), or on cancel. */
  function waitForNetwork(job, delay) {
    return new Promise((resolve) => {
      let timer = 0;
      const finish = () => {
        clearTimeout(timer);
        window.removeEventListener("online", back);
        job.wake = null;
        resolve();
      };
      const back = () => {
        clearTimeout(timer);
        timer = setTimeout(finish, 300);
      };
      const look = () => {
        if (navigator.onLine) finish();
        else timer = setTimeout(look, delay);
      };
      timer = setTimeout(look, delay);
      window.addEventListener("online", back);
      job.wake = finish;
    });
  }

  /** An API call that must get through (the photo is stored already): tried again once the network is
   * back; `waiting()` hears each wait. */
  async function untilDelivered(call, waiting) {
    let delay = 1000;
    for (;;) {
      try {
        return await call();
      } catch (error) {
        const err = web.asError(error);
        if (err.status !== 0 || err.code !== "network") throw err;
        if (waiting) waiting();
        await waitForNetwork({}, delay);
        delay = Math.min(delay * 2, 30000);
      }
    }
  }

  /**
   * One photo of `kind` into the flow: compressed, presigned, sent, checked. `status(text)` hears each
   * stage. Rejects with the server's refusal (code `upload.cancelled` once cancelled). Options:
   * `view` (see sendToStorage; without it the upload's percentage goes to `status`), `resume` (wait
   * out a dropped connection and go on), `waiting()` (the check waits for the network).
   */
  async function storePhoto(client, flowId, kind, file, status, options) {
    const { view, resume, waiting } = options || {};
    const path = "/v1/flows/" + encodeURIComponent(flowId);
    status("正在处理照片…");
    const photo = await compress(file);
    status(view ? "正在上传…" : "正在上传… 0%");
    const presign = () => client.call("POST", path + "/uploads", { kind, content_type: photo.type });
    const shown = view || { progress: (share) => status("正在上传… " + Math.round(share * 100) + "%") };
    const key = await sendToStorage(presign, photo.blob, shown, resume);
    status("正在检查照片…");
    const check = () => client.call("POST", path + "/documents", { kind, key });
    return resume ? untilDelivered(check, waiting) : check();
  }

  web.reencode = reencode;
  web.compressPhoto = compress;
  web.base64 = base64;
  web.storePhoto = storePhoto;
  web.cancelUpload = cancelUpload;
})((window.ChekaWeb = window.ChekaWeb || {}));
