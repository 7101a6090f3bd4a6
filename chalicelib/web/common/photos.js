/* Photos into a verification flow, for the pages other than the H5 client's own screens: scaled and
 * compressed in the browser to what the platform needs, sent straight to storage through a presigned
 * form (with progress), then checked by the server (POST /v1/flows/{id}/documents). Needs api.js. */
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

  function postForm(post, blob, progress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(post.fields)) form.append(name, value);
      form.append("file", blob, "photo");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", post.url);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable && e.total && progress) progress(e.loaded / e.total);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else reject(new web.ApiError(xhr.status, { code: "upload.refused", message_zh: "照片未能上传，请重新选择照片" }));
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = () =>
        reject(new web.ApiError(0, { code: "upload.network", message_zh: "网络中断，照片未上传完成，请重新选择照片" }));
      xhr.send(form);
    });
  }

  /**
   * One photo of `kind` into the flow: compressed, presigned, sent, checked. `status(text)` hears each
   * stage (and the upload's percentage). Rejects with the server's refusal.
   */
  async function storePhoto(client, flowId, kind, file, status) {
    const path = "/v1/flows/" + encodeURIComponent(flowId);
    status("正在处理照片…");
    const photo = await compress(file);
    const post = await client.call("POST", path + "/uploads", { kind, content_type: photo.type });
    if (photo.blob.size > post.max_bytes) {
      throw new web.ApiError(413, {
        code: "client.too_large",
        message_zh: "图片过大，不能超过 " + Math.floor(post.max_bytes / 1048576) + " MB",
      });
    }
    status("正在上传… 0%");
    await postForm(post, photo.blob, (share) => status("正在上传… " + Math.round(share * 100) + "%"));
    status("正在检查照片…");
    return client.call("POST", path + "/documents", { kind, key: post.key });
  }

  web.reencode = reencode;
  web.compressPhoto = compress;
  web.base64 = base64;
  web.storePhoto = storePhoto;
})((window.ChekaWeb = window.ChekaWeb || {}));
