"""The settings model: environment variables are read here once, nothing else reads ``os.environ``.

Import :func:`chalicelib.core.settings.get_settings` rather than this module: pydantic-settings is heavy to
import, so a cold start loads it only when a setting is first read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Stage = Literal["local", "test", "dev", "prod"]

#: Regions offering Rekognition's face APIs (CompareFaces, DetectFaces, collections). None of the China
#: regions does: stages there run the dlib engine in their engines function (``face_engine="remote"``).
REKOGNITION_FACE_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-west-1", "eu-west-2",
        "eu-central-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1",
        "ap-northeast-2", "us-gov-west-1",
    }
)  # fmt: skip
#: Regions offering Rekognition Face Liveness (fewer than the face APIs).
REKOGNITION_LIVENESS_REGIONS = frozenset(
    {
        "us-east-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-central-1", "ap-south-1",
        "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2", "ca-central-1",
    }
)  # fmt: skip
#: Regions without Amazon Cognito user pools: a deployed stage there names the car maker's own
#: OpenID Connect issuer for its staff (``staff_oidc_issuer``); elsewhere infra may create a pool.
NO_COGNITO_USER_POOL_REGIONS = frozenset({"cn-north-1", "cn-northwest-1"})
#: Python modules the in-process ("local") engines need; the Lambda zip of a deployed stage holds none.
LOCAL_ENGINE_MODULES = {
    "ocr": ("numpy", "onnxruntime", "cv2", "rapidocr_onnxruntime"),
    "faces": ("numpy", "dlib", "face_recognition_models"),
    "liveness": ("numpy", "dlib"),
}

#: Development-only signing key: accepted on the ``local`` and ``test`` stages only.
_DEV_TOKEN_SECRET = "cheka-local-development-token-secret-not-for-production"
#: The SMS reply callback's signing key on local stages (sign a test reply with it: HMAC-SHA256 of the body).
DEV_SMS_REPLY_SECRET = "cheka-local-development-sms-reply-secret-not-for-production"


class Settings(BaseSettings):
    """Runtime configuration, prefixed ``CHEKA_`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CHEKA_", extra="ignore", frozen=True)

    stage: Stage = "local"
    region: str = "cn-north-1"
    #: AWS endpoint (the moto server locally). Empty means the real AWS endpoints.
    aws_endpoint_url: str | None = None
    moto_port: int = 5000
    api_port: int = 8000
    sandbox_port: int = 8100
    #: Where ``make run`` records the running local stack (endpoints, ports, its settings) for the CLI to
    #: find it without exported variables; relative to the repository root. Empty: not recorded.
    local_state_file: str = ".local/stack.json"

    #: Name prefix of every resource; infra and the local bootstrap derive names from it.
    resource_prefix: str = "cheka"

    token_secret: SecretStr | None = None
    token_issuer: str = "cheka"
    token_ttl_seconds: int = 3600
    # --- secret rotation: the token signing key and the operator keys (chalicelib.events.rotation) -------
    #: Secrets Manager rotates the token signing key this often (infra's schedule; operator keys: hand-overs).
    rotation_days: int = Field(default=30, ge=1, le=365)
    #: The token key's previous version still verifies this long after the rotation (> the longest token).
    rotation_overlap_seconds: int = Field(default=2 * 3600, ge=900, le=7 * 24 * 3600)
    #: A function keeps the token keys it read this long (a rotation reaches every container within it).
    rotation_cache_seconds: int = Field(default=300, ge=5, le=3600)
    #: Sign-in sessions (refresh tokens, table ``sessions``): a session unused this long ends; one ends
    #: this long after sign-in however often it is refreshed; the refresh token just retired is still
    #: accepted this long (a refresh answer lost on a weak network, two tabs at once).
    session_idle_seconds: int = 14 * 24 * 3600
    session_max_age_seconds: int = 30 * 24 * 3600
    session_reuse_grace_seconds: int = 30
    #: Enterprise-portal accounts (``chalicelib.accounts``): their access tokens' lifetime (short: a
    #: revoked session's token stops at the latest then; account routes also check the session), the
    #: accounts one phone may hold, the lockout (failures that lock, the first lock, doubling up to the
    #: cap) and argon2id's cost (one verification 50–250 ms: bench/README.md).
    account_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    accounts_per_phone: int = Field(default=5, ge=1, le=50)
    account_lock_threshold: int = Field(default=5, ge=2, le=20)
    account_lock_seconds: int = Field(default=900, ge=60)
    account_lock_cap_seconds: int = Field(default=24 * 3600, ge=60)
    password_time_cost: int = Field(default=2, ge=1, le=20)
    password_memory_kib: int = Field(default=65536, ge=8192, le=1048576)
    password_parallelism: int = Field(default=1, ge=1, le=8)

    #: Staff sign-in (reviewers, admins, auditors, operations) through one OpenID Connect issuer per
    #: stage: the car maker's corporate IdP, the stage's Cognito user pool (infra sets these where the
    #: region offers one), or the local provider of ``make run``. Its access tokens are verified against
    #: its JWKS (``chalicelib.core.oidc``); staff roles come only from it on deployed stages.
    staff_oidc_issuer: str | None = Field(default=None, max_length=300)
    #: The client id registered at the issuer: the ``aud`` of its tokens (Cognito: ``client_id``).
    staff_oidc_audience: str | None = Field(default=None, max_length=200)
    #: The JWKS address; None: the ``jwks_uri`` of the issuer's discovery document.
    staff_oidc_jwks_url: str | None = Field(default=None, max_length=300)
    #: The claim listing the staff member's groups or roles (``cognito:groups``, ``groups``, ``roles``).
    staff_oidc_roles_claim: str = Field(default="cognito:groups", min_length=1, max_length=100)
    #: IdP group → our role; groups it does not name are ignored. Empty: groups named as our roles.
    staff_oidc_role_map: dict[
        str, Literal["reviewer", "review_lead", "admin", "auditor", "operations", "call_centre"]
    ] = Field(default_factory=dict)
    #: Values of ``amr`` showing a second factor (RFC 8176), and/or values of ``acr`` that imply one.
    staff_oidc_mfa_amr: list[str] = Field(default=["mfa", "otp", "totp", "swk", "hwk"])
    staff_oidc_mfa_acr: list[str] = Field(default_factory=list)
    #: The issuer requires a second factor of every sign-in but says so in no claim (a Cognito user pool
    #: with MFA required: its access tokens carry no ``amr``). Infra sets it for the pool it creates.
    staff_oidc_mfa_by_issuer: bool = False
    #: Clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    staff_oidc_leeway_seconds: int = Field(default=30, ge=0, le=300)
    #: A discovery or JWKS fetch waits this long; the IdP down answers 503 ``auth.idp_unavailable``.
    staff_oidc_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    #: The JWKS is kept this long; a token naming an unknown key refetches it at most once this often.
    staff_oidc_jwks_cache_seconds: int = Field(default=3600, ge=60)
    staff_oidc_jwks_refetch_seconds: int = Field(default=60, ge=1)
    #: The scopes the console asks for.
    staff_oidc_scopes: list[str] = Field(default=["openid", "profile"], min_length=1)
    #: Where the console sends a staff member to end the IdP's session; None: the discovery document's
    #: ``end_session_endpoint`` (Cognito has none: infra sets its hosted domain's ``/logout``).
    staff_oidc_end_session_url: str | None = Field(default=None, max_length=300)
    #: The console's address (https), registered at the IdP as its sign-in and sign-out redirect; a
    #: Cognito pool's app client is created with it.
    staff_console_url: str | None = Field(default=None, max_length=300)

    #: Request bodies above this size are refused with 413: 5 MB, under Lambda's 6 MB synchronous payload,
    #: which also holds the headers and the rest of API Gateway's event (a body at 6 MB would be a 5xx).
    max_body_bytes: int = 5 * 1024 * 1024

    # --- hostile input: what a request may hold before it is refused unread -------------------------
    #: JSON bodies nested deeper than this (arrays and objects) are refused with 400.
    request_max_json_depth: int = Field(default=32, ge=4, le=200)
    #: A query parameter's value or a path parameter longer than this many characters is refused.
    request_max_param_chars: int = Field(default=2000, ge=64, le=10_000)
    #: A request header value longer than this many characters is refused (API Gateway caps all at 10 KB).
    request_max_header_chars: int = Field(default=8192, ge=1024, le=10_240)
    #: Rows one synchronous inventory import through the API may hold.
    max_import_rows: int = 20_000
    #: The OEM's default of the functions a registration asks the operator to open beside emergency
    #: (最小必要, 第十四条), for vehicles whose inventory row names none (column ``functions``).
    default_functions: list[Literal["emergency", "telematics", "data"]] = Field(
        default=["telematics", "data"]
    )

    #: Face engine: "local" (dlib in this process, the embedded default), "remote" (the same dlib engine in
    #: the stage's engines function, a container-image Lambda: the China regions, which have no
    #: Rekognition) or "rekognition".
    face_engine: Literal["local", "remote", "rekognition"] = "local"
    #: OCR engine: "local" (RapidOCR in this process) or "remote" (RapidOCR in the engines function).
    ocr_engine: Literal["local", "remote"] = "local"
    #: The engines function (container image with RapidOCR and dlib) the "remote" engines call; None:
    #: ``<prefix>-<stage>-engines`` (``engines_function``).
    engines_function_name: str | None = None
    #: Seconds an engine call may take before the person is asked to try again (the attempt not counted).
    engines_timeout_seconds: float = Field(default=20.0, gt=0)

    # Outbound calls bounded (chalicelib.core.outbound): every AWS client and table connection.
    #: Seconds to open a connection to an AWS service.
    outbound_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    #: Seconds to wait for each reply of an AWS service (the engines function: engines_timeout_seconds).
    outbound_read_timeout_seconds: float = Field(default=5.0, gt=0, le=25)
    #: Attempts of one AWS call, the first included (throttling, timeouts, 5xx are retried).
    outbound_max_attempts: int = Field(default=3, ge=1, le=5)
    #: An API request starts no outbound attempt that could end later than this after it began.
    outbound_request_seconds: float = Field(default=20.0, ge=5, le=27)
    #: Similarity 0–100 at or above which two faces match; None = the engine's calibrated default
    #: (local 55 = dlib distance 0.54, calibrated for FAR ≤ 0.1 %; Rekognition 90). Recorded in the
    #: evidence with every score.
    face_threshold: float | None = None
    #: One face, one identity (一脸多证): a passed live face is bound to its identity, and a live face
    #: already bound to another identity sends the flow to review.
    face_dedup: bool = True
    #: Similarity at or above which a bound face is the same face; None = ``face_threshold`` in force.
    face_dedup_threshold: float | None = Field(default=None, ge=0, le=100)
    face_min_px: int = 64
    face_max_yaw: float = 30.0
    face_max_pitch: float = 25.0
    #: Face attempts (a liveness check with its ID-portrait match) allowed per flow and per person per
    #: day (China time); when they run out the flow offers manual review (SPEC §3).
    face_attempts_per_flow: int = Field(default=3, ge=1)
    face_attempts_per_person_day: int = Field(default=5, ge=1)
    #: 人工审核: the time the owner is told a reviewer takes, as shown to them (and in the SMS promise).
    review_expected_zh: str = Field(default="1 个工作日内", min_length=1, max_length=40)
    #: Seconds between two reads of a case's status by the owner's review screen.
    review_poll_seconds: int = Field(default=15, ge=2, le=300)
    #: Liveness engine: "local" (frame-burst challenge in this process), "remote" (the same in the engines
    #: function) or "rekognition" (Face Liveness).
    liveness_engine: Literal["local", "remote", "rekognition"] = "local"
    #: The local engine does not stop a replayed video, a 3-D mask or injected frames (README): deployed
    #: stages refuse to build it unless this says the risk is accepted.
    accept_local_liveness_risk: bool = False
    #: A liveness session is single use and expires after this many seconds.
    liveness_session_seconds: int = Field(default=180, ge=10)
    #: Rekognition Face Liveness confidence (0–100) at or above which a session is live.
    liveness_confidence: float = Field(default=80.0, ge=0, le=100)
    #: An abandoned flow expires (and its documents are purged) after this many hours.
    flow_ttl_hours: int = Field(default=24, ge=1)
    #: 第十八条: registration materials are kept this many years after the card's service to the holder
    #: ends (de-registration, transfer, scrap, part replacement), then purged by ``purge_retention``.
    retention_years: int = Field(default=2, ge=2)
    #: Face images (live capture, on-site photo) purged this many years after the service ends, if sooner
    #: (the biometric consent in force must state it); None: with the other materials (v3 states 2 years).
    retention_face_years: int | None = Field(default=None, ge=0)
    #: The read log (查阅日志: who read which record's personal data in clear, and why) is kept this many
    #: years after each read (TTL): longer than the records it names may live (a card's service, typically
    #: the vehicle's 15 years, plus ``retention_years``), and at least PIPL's three years for processing logs.
    read_log_retention_years: int = Field(default=20, ge=3)

    #: Telecom operators' push endpoints (operator → base URL); local stages default every operator to
    #: the sandbox operator on ``sandbox_port``.
    operator_base_urls: dict[str, str] = Field(default_factory=dict)
    operator_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Operator callbacks must be signed within this many seconds of our clock (nonces kept twice as long).
    operator_signature_window_seconds: int = Field(default=300, ge=10)
    #: The path the operator signs for callbacks (set it when API Gateway adds a prefix).
    operator_callback_path: str = "/v1/operator/callbacks"
    #: Operators that ask for the actual users (实际使用人, 第九条(四)) of enterprise cards: each change is
    #: pushed to them. None: every operator on a local stage (the sandbox takes them), none deployed.
    operators_wanting_actual_users: list[str] | None = None
    #: The local sandbox operator decides this many seconds after a push.
    sandbox_decision_delay_seconds: float = Field(default=1.0, ge=0)

    #: SMS channel: "drop" (local stages: the SMS drop, S3 objects the developer reads) or "sns" (deployed);
    #: None picks by stage. SNS cannot deliver SMS inside the China regions: deployed stages in
    #: cn-north-1/cn-northwest-1 need a domestic SMS provider behind the same port.
    sms_sender: Literal["drop", "sns"] | None = None
    sms_code_ttl_seconds: int = Field(default=300, ge=30)
    sms_resend_seconds: int = Field(default=60, ge=0)
    sms_max_wrong_tries: int = Field(default=5, ge=1)
    #: Sender name SNS shows where the destination supports it.
    sms_sender_id: str | None = None

    # SMS abuse limits (chalicelib.sms.limits; README "Security"): codes per phone, per client, per platform.
    #: Codes a day per phone and purpose (anonymous purposes), or per phone, purpose and signed-in caller.
    sms_sends_per_phone_purpose_day: int = Field(default=10, ge=1, le=1000)
    #: Codes a day to one phone from anonymous purposes together (login, account codes).
    sms_sends_per_phone_day: int = Field(default=20, ge=1, le=2000)
    #: Codes a day to one phone from signed-in purposes of callers other than the phone's own holder.
    sms_sends_per_phone_signed_in_day: int = Field(default=30, ge=1, le=2000)
    #: Signed-in code asks an hour and a day per caller (counted instead of the IP; no captcha).
    sms_sends_per_caller_hour: int = Field(default=10, ge=1, le=1_000_000)
    sms_sends_per_caller_day: int = Field(default=40, ge=1, le=10_000_000)
    #: Failed login code tries an hour and a day from one client IP, and from one device.
    sms_wrong_tries_per_ip_hour: int = Field(default=30, ge=1, le=1_000_000)
    sms_wrong_tries_per_ip_day: int = Field(default=100, ge=1, le=10_000_000)
    sms_wrong_tries_per_device_hour: int = Field(default=10, ge=1, le=1_000_000)
    sms_wrong_tries_per_device_day: int = Field(default=30, ge=1, le=10_000_000)
    #: Code asks an hour and a day from one client IP, and from one device (``X-Device-Id``).
    sms_sends_per_ip_hour: int = Field(default=20, ge=1, le=1_000_000)
    sms_sends_per_ip_day: int = Field(default=100, ge=1, le=10_000_000)
    sms_sends_per_device_hour: int = Field(default=10, ge=1, le=1_000_000)
    sms_sends_per_device_day: int = Field(default=30, ge=1, le=10_000_000)
    #: The platform's codes an hour (SMS pumping); past it sends answer 503 and SmsBudgetExhausted alarms.
    sms_global_budget_per_hour: int = Field(default=5000, ge=1, le=10_000_000)
    #: Code asks in an hour from one client (IP or device) before each further one needs a captcha.
    captcha_after_sends: int = Field(default=3, ge=0, le=1_000_000)
    #: Seconds a captcha challenge may be answered (once).
    captcha_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    #: Captcha challenges an hour one client IP may ask for.
    captcha_issues_per_ip_hour: int = Field(default=60, ge=1, le=1_000_000)
    # Open flows per owner (chalicelib.registration / chalicelib.verification): unfinished, unexpired.
    #: Registrations one signed-in person may have open at once (finish or cancel one to start another).
    open_registrations_per_owner: int = Field(default=5, ge=1, le=1000)
    #: Verification flows one signed-in person may have open at once.
    open_flows_per_owner: int = Field(default=10, ge=1, le=1000)
    # API Gateway throttling and the WAF web ACL in front of the API (infra.gateway; README "Operations").
    #: Requests a second (steady) and burst of the whole API stage, all clients together.
    api_throttle_rate_per_second: float = Field(default=500, ge=1, le=10_000)
    api_throttle_burst: int = Field(default=1000, ge=1, le=5000)
    #: The same of each sensitive route (SMS codes, captcha, logins, sign-up, the SMS provider's replies).
    api_throttle_sensitive_rate_per_second: float = Field(default=20, ge=1, le=10_000)
    api_throttle_sensitive_burst: int = Field(default=40, ge=1, le=5000)
    #: The WAF web ACL (off where the region offers no WAFv2 for API Gateway).
    waf_enabled: bool = Field(default=True)
    #: Requests one IP may make in five minutes, to the whole API and to the sensitive routes.
    waf_rate_limit_per_ip: int = Field(default=2000, ge=10, le=2_000_000_000)
    waf_sensitive_rate_limit_per_ip: int = Field(default=100, ge=10, le=2_000_000_000)
    #: WAF-blocked requests in five minutes that raise the alarm (an attack under way, or a false positive).
    waf_blocked_alarm_threshold: int = Field(default=100, ge=1, le=1_000_000)

    #: How a person may show they hold the car before registering its cards (at least one):
    #: "sales_phone" (the verified phone is the sales record's contact phone, column owner_phone),
    #: "head_unit" (a one-time code shown on the car's head unit), "vehicle_document" (a photo of the
    #: 行驶证 or purchase invoice whose VIN, read by OCR, matches).
    possession_methods: list[Literal["sales_phone", "head_unit", "vehicle_document"]] = Field(
        default=["sales_phone", "head_unit", "vehicle_document"], min_length=1
    )
    #: The car's telematics: "sandbox" (local: codes kept under dev/head-unit/ of the documents bucket).
    vehicle_channel: Literal["sandbox"] = "sandbox"
    head_unit_code_ttl_seconds: int = Field(default=300, ge=30)
    head_unit_resend_seconds: int = Field(default=60, ge=0)
    head_unit_max_sends: int = Field(default=5, ge=1)
    head_unit_max_wrong_tries: int = Field(default=5, ge=1)

    #: The OEM (车辆生产企业) the consent texts name as the processor of personal data, and its contact
    #: (where a person acts, exercises their rights and complains: 第十三条/第十七条/第二十一条).
    oem_name: str = Field(default="示例汽车有限公司", min_length=1, max_length=64)
    oem_contact: str = Field(
        default="客服热线 400-800-0000，电子邮箱 privacy@oem.example.com", min_length=1, max_length=200
    )
    #: 客服 (the H5 help page and the enterprise entry): the customer-service phone and its hours.
    service_phone: str = Field(default="400-800-0000", min_length=3, max_length=32)
    service_hours: str = Field(default="每天 8:00–20:00", min_length=1, max_length=64)
    #: 单位用户业务: the enterprise portal's address when it is hosted elsewhere (a CDN); by default the
    #: H5 client links to the portal this app serves (``/portal``).
    enterprise_portal_url: str | None = Field(default=None, max_length=300, pattern=r"^https://")
    #: 投诉举报 (第二十一条): complaints one person may file in a China day.
    complaints_per_day: int = Field(default=5, ge=1)
    #: A dealer's on-the-spot hand-off of a registration to the owner (第二十条) is usable this long, once.
    dealer_handoff_ttl_seconds: int = Field(default=600, ge=60, le=3600)

    #: Identity authority (证件真实性): "sandbox" (the local sandbox service) or "tencent" (Tencent Cloud
    #: FaceID; its SDK is packaged only for stages that choose it). None picks by stage: the sandbox on
    #: local stages, Tencent on deployed ones (``authority_kind``).
    identity_authority: Literal["sandbox", "tencent"] | None = None
    #: The sandbox authority's base URL; None: the loopback sandbox on ``authority_port``.
    authority_url: str | None = None
    authority_port: int = 8200
    #: ``make run``'s local staff identity provider (OpenID Connect with TOTP) listens here; the API of
    #: the local stack trusts it as ``staff_oidc_issuer``.
    oidc_port: int = 8300
    #: Faults the local sandbox authority starts with (``latency=2,failure_rate=0.5,wrong_rate=0.1,down``).
    authority_sandbox_faults: str = ""
    authority_timeout_seconds: float = Field(default=3.0, gt=0)
    #: Further tries after a timeout or a 5xx (with backoff), before the answer is "unavailable".
    authority_retries: int = Field(default=2, ge=0)
    #: When the authority cannot answer: "retry" (503, the person asks again) or "review" (a reviewer).
    authority_unavailable: Literal["retry", "review"] = "retry"
    #: Tencent Cloud region and endpoint (None: the SDK's default endpoint).
    authority_tencent_region: str = "ap-guangzhou"
    authority_tencent_endpoint: str | None = None

    #: SNS topic every alarm of the stage notifies (infra creates the topic; these addresses subscribe).
    alarm_emails: list[str] = Field(default_factory=list)
    #: A push still waiting for the operator's answer after this many minutes raises the stale-push alarm.
    push_stale_minutes: int = Field(default=30, ge=1)
    #: A push older than this, still unanswered after the hourly reconciliation asked its operator, is
    #: drift (``ReconciliationDrift``, alarmed): nobody can repair it without a person.
    push_drift_minutes: int = Field(default=240, ge=1)
    #: An operator's spot check (抽查) that names no deadline is due this many days after it arrived.
    spot_check_answer_days: int = Field(default=5, ge=1)
    #: Fleet review (单位批次审核): working days (China time) a reviewer has before the case escalates to a
    #: review lead, and the fraction of them after which the reviewer is reminded.
    fleet_review_working_days: float = Field(default=1, gt=0, le=30)
    fleet_review_remind_fraction: float = Field(default=0.5, gt=0, lt=1)
    #: Test stages: the reminder and the deadline in plain seconds from the case's opening (None: working
    #: days).
    fleet_review_remind_seconds: int | None = Field(default=None, ge=1)
    fleet_review_deadline_seconds: int | None = Field(default=None, ge=1)
    #: Batches of more vehicles than this need a second approver (four-eyes, a different reviewer).
    fleet_four_eyes_vehicles: int = Field(default=50, ge=0)
    #: Where an escalated fleet case is announced by SMS (the review leads' duty phone); None: log only.
    fleet_review_lead_phone: str | None = Field(default=None, pattern=r"^1\d{10}$")
    #: The fleet review state machine (``infra/statemachines/fleet_review.asl.json``): its ARN, which infra
    #: tells the functions (None: looked up by its declared name, as on the embedded AWS); how long a batch
    #: waits for the enterprise's replaced documents before it expires; how long a task run by our code
    #: (checks, preparing and applying the cards) may take before Step Functions sends it again.
    fleet_state_machine_arn: str | None = Field(default=None, max_length=300)
    fleet_resubmission_timeout_seconds: int = Field(default=30 * 86400, ge=1, le=365 * 86400)
    fleet_code_task_timeout_seconds: int = Field(default=3600, ge=1, le=86400)
    #: ``/health`` answers from a cache this many seconds old at most.
    health_cache_seconds: float = Field(default=5.0, ge=0)
    #: Backfill campaigns (补登记): the campaign senders that may run at once (the sending function's
    #: reserved concurrency and its queue's maximum concurrency, read by infra; at least 2, SQS's floor).
    #: With the token bucket it bounds the SMS rate and the provider's open connections.
    campaign_sender_concurrency: int = Field(default=2, ge=2, le=1000)
    #: Backfill waves: targets per campaign-sends message; targets read per index page while planning;
    #: tries of one SMS before it is failed (and called); how long a paused campaign's message stays
    #: hidden before it is looked at again; how long a planner runs before it saves its cursor and
    #: re-queues its shard (well within the function's timeout).
    campaign_targets_per_message: int = Field(default=10, ge=1, le=100)
    campaign_plan_page: int = Field(default=500, ge=1, le=1000)
    campaign_send_retries: int = Field(default=3, ge=1, le=10)
    campaign_paused_recheck_seconds: int = Field(default=300, ge=1, le=43200)
    #: Below the campaign functions' 60 s timeout, with room for the last page and the re-queue.
    campaign_planner_budget_seconds: float = Field(default=20.0, gt=0, le=40)
    #: Backfill campaigns: the EventBridge Scheduler group holding one schedule per wave, and the role it
    #: assumes to send a wave's start message to the campaign-waves queue (infra sets it; None locally,
    #: where the worker plays the scheduler); the most characters a campaign SMS may have (two segments
    #: of 67); the link put in every message (None: the H5 client this app serves); the highest rate a
    #: campaign may ask for, in messages per second.
    campaign_schedule_group: str | None = Field(default=None, max_length=64)
    campaign_scheduler_role_arn: str | None = Field(default=None, max_length=300)
    campaign_sms_max_chars: int = Field(default=134, ge=40, le=670)
    campaign_link: str | None = Field(default=None, max_length=100)
    campaign_max_rate: int = Field(default=500, ge=1, le=10000)
    #: Backfill campaigns: the SMS provider's reply callback is signed (HMAC-SHA256) with this key;
    #: None: the stage's ``sms_reply_secret_name`` secret (operations put the provider's key in it), or
    #: the development key on local stages.
    sms_reply_secret: SecretStr | None = None

    log_level: str = "INFO"
    service_name: str = "cheka"
    metrics_namespace: str = "Cheka"

    @property
    def campaign_schedules_group(self) -> str:
        """The scheduler group of the stage's campaign waves."""
        return self.campaign_schedule_group or f"{self.resource_prefix}-{self.stage}-campaigns"

    @property
    def campaign_message_link(self) -> str:
        """The link a campaign message carries (the H5 client of the local stack by default)."""
        return self.campaign_link or f"http://127.0.0.1:{self.api_port}/h5/"

    @property
    def engines_function(self) -> str:
        """Name of the engines function (container-image Lambda serving OCR, faces and liveness)."""
        return self.engines_function_name or f"{self.resource_prefix}-{self.stage}-engines"

    @property
    def remote_engines(self) -> tuple[str, ...]:
        """The engines this stage runs in its engines function (empty: no engines function needed)."""
        chosen = {"ocr": self.ocr_engine, "faces": self.face_engine, "liveness": self.liveness_engine}
        return tuple(kind for kind, engine in chosen.items() if engine == "remote")

    def configuration_problems(self) -> list[str]:
        """What keeps this stage from running its engines as configured (empty: it can run).

        A deployed stage's API package holds no local engine (numpy, dlib, onnxruntime, OpenCV): its
        OCR and faces run in the engines function or on Rekognition, where its region offers it.
        """
        from importlib.util import find_spec

        problems = []
        chosen = {"ocr": self.ocr_engine, "faces": self.face_engine, "liveness": self.liveness_engine}
        for kind, engine in chosen.items():
            setting = {"ocr": "ocr_engine", "faces": "face_engine", "liveness": "liveness_engine"}[kind]
            if engine == "local" and not self.is_local:
                problems.append(
                    f"CHEKA_{setting.upper()}=local: the {self.stage} stage's Lambda package holds no local "
                    f"{kind} engine; choose remote (the engines function)"
                    + (" or rekognition" if kind != "ocr" else "")
                )
            elif engine == "local":
                missing = [m for m in LOCAL_ENGINE_MODULES[kind] if find_spec(m) is None]
                if missing:
                    problems.append(
                        f"CHEKA_{setting.upper()}=local needs {', '.join(missing)}: run `make install`"
                    )
        from chalicelib.kernel.operators import Operator

        known = {op.value for op in Operator}
        for unknown in sorted(set(self.operator_base_urls) - known):
            problems.append(
                f"CHEKA_OPERATOR_BASE_URLS names {unknown!r}, not an operator ({', '.join(sorted(known))})"
            )
        for unknown in sorted(set(self.operators_wanting_actual_users or ()) - known):
            problems.append(
                f"CHEKA_OPERATORS_WANTING_ACTUAL_USERS names {unknown!r}, not an operator "
                f"({', '.join(sorted(known))})"
            )
        if self.face_engine == "rekognition" and self.region not in REKOGNITION_FACE_REGIONS:
            problems.append(
                f"CHEKA_FACE_ENGINE=rekognition: Rekognition's face APIs are not offered in {self.region}; "
                "choose remote (dlib in the engines function)"
            )
        if self.liveness_engine == "rekognition" and self.region not in REKOGNITION_LIVENESS_REGIONS:
            problems.append(
                f"CHEKA_LIVENESS_ENGINE=rekognition: Face Liveness is not offered in {self.region}; "
                "choose remote (with CHEKA_ACCEPT_LOCAL_LIVENESS_RISK=true) or a region that has it"
            )
        frame_burst = self.liveness_engine in ("local", "remote")
        if frame_burst and not self.is_local and not self.accept_local_liveness_risk:
            problems.append(
                f"CHEKA_LIVENESS_ENGINE={self.liveness_engine}: the frame-burst liveness check does not "
                "stop a replayed video or a mask; a deployed stage uses it only with "
                "CHEKA_ACCEPT_LOCAL_LIVENESS_RISK=true"
            )
        if not self.is_local and not (self.campaign_link or "").startswith("https://"):
            problems.append(
                "CHEKA_CAMPAIGN_LINK is not an https address: a deployed stage's backfill SMS would carry "
                "the local H5 address; set the mini-program or H5 link its messages carry"
            )
        problems.extend(self.staff_sign_in_problems())
        return problems

    @property
    def staff_idp(self) -> Literal["oidc", "cognito"] | None:
        """Who signs staff in: the issuer the settings name ("oidc"), else on a deployed stage whose
        region offers user pools the Cognito pool infra creates ("cognito"), else nobody (None)."""
        if self.staff_oidc_issuer:
            return "oidc"
        if not self.is_local and self.region not in NO_COGNITO_USER_POOL_REGIONS:
            return "cognito"
        return None

    def staff_sign_in_problems(self) -> list[str]:
        """What keeps staff from signing in on this stage (part of ``configuration_problems``)."""
        if self.is_local:
            return []
        problems = []
        if self.staff_idp is None:
            problems.append(
                f"CHEKA_STAFF_OIDC_ISSUER is not set: {self.region} offers no Cognito user pools, so the "
                f"{self.stage} stage names the car maker's OpenID Connect issuer for its staff (README: "
                "Staff sign-in)"
            )
        elif self.staff_idp == "oidc":
            issuer = self.staff_oidc_issuer or ""
            if not issuer.startswith("https://"):
                problems.append(f"CHEKA_STAFF_OIDC_ISSUER={issuer!r}: a deployed stage's issuer is https")
            if not self.staff_oidc_audience:
                problems.append(
                    "CHEKA_STAFF_OIDC_AUDIENCE is not set: the client id registered at the staff issuer"
                )
        elif not (self.staff_console_url or "").startswith("https://"):
            problems.append(
                "CHEKA_STAFF_CONSOLE_URL is not an https address: the Cognito pool's app client "
                "redirects to the console there"
            )
        return problems

    @property
    def is_local(self) -> bool:
        return self.stage in ("local", "test")

    @property
    def endpoint_url(self) -> str | None:
        """The AWS endpoint: explicit setting, else the loopback moto server on ``local``."""
        if self.aws_endpoint_url is not None:
            return self.aws_endpoint_url or None
        if self.stage == "local":
            return f"http://127.0.0.1:{self.moto_port}"
        return None

    def table_name(self, short: str) -> str:
        return f"{self.resource_prefix}-{self.stage}-{short}"

    @property
    def documents_bucket(self) -> str:
        return f"{self.resource_prefix}-{self.stage}-documents"

    @property
    def face_collection(self) -> str:
        """The Rekognition face collection of bound faces (stages with ``face_engine="rekognition"``)."""
        return f"{self.resource_prefix}-{self.stage}-faces"

    @property
    def pii_key_alias(self) -> str:
        """KMS key that wraps the data keys of personal fields."""
        return f"alias/{self.resource_prefix}-{self.stage}-pii"

    @property
    def hash_key_alias(self) -> str:
        """KMS HMAC key for look-up hashes of ID numbers (the key never leaves KMS)."""
        return f"alias/{self.resource_prefix}-{self.stage}-pii-hash"

    @property
    def operator_secret_pattern(self) -> str:
        """Secrets Manager name of each operator's keys (``{operator}`` is filled in)."""
        return f"{self.resource_prefix}/{self.stage}/operator/{{operator}}"

    def operator_urls(self) -> dict[str, str]:
        """Operator value → base URL of its push interface."""
        if self.operator_base_urls or not self.is_local:
            return dict(self.operator_base_urls)
        operators = ("china_mobile", "china_unicom", "china_telecom", "china_broadnet")
        return dict.fromkeys(operators, f"http://127.0.0.1:{self.sandbox_port}")

    def actual_user_operators(self) -> tuple[str, ...]:
        """The operators (values) that get the actual users of enterprise cards pushed."""
        if self.operators_wanting_actual_users is not None:
            return tuple(self.operators_wanting_actual_users)
        return ("china_mobile", "china_unicom", "china_telecom", "china_broadnet") if self.is_local else ()

    @property
    def authority_base_url(self) -> str:
        return self.authority_url or f"http://127.0.0.1:{self.authority_port}"

    @property
    def authority_kind(self) -> Literal["sandbox", "tencent"]:
        """The identity authority in force: the setting, else the sandbox locally and Tencent deployed."""
        if self.identity_authority is not None:
            return self.identity_authority
        return "sandbox" if self.is_local else "tencent"

    @property
    def authority_secret_name(self) -> str:
        """Secrets Manager secret of the identity provider's credentials (``secret_id``, ``secret_key``)."""
        return f"{self.resource_prefix}/{self.stage}/authority/{self.authority_kind}"

    @property
    def lambda_requirement_files(self) -> tuple[str, ...]:
        """Requirement files the stage's Lambda package adds to ``requirements.txt`` (the SDKs of the
        providers it chose); read by infra when it packages the functions."""
        return ("requirements-authority-tencent.txt",) if self.authority_kind == "tencent" else ()

    @property
    def sms_reply_secret_name(self) -> str:
        """Secrets Manager secret of the key the SMS provider signs its reply callbacks with (provided)."""
        return f"{self.resource_prefix}/{self.stage}/sms-reply"

    def sms_reply_signing_key(self) -> str:
        """The reply callback's key: explicit setting, the development key on local stages, else Secrets
        Manager (cached five minutes)."""
        if self.sms_reply_secret is not None:
            return self.sms_reply_secret.get_secret_value()
        if self.is_local:
            return DEV_SMS_REPLY_SECRET
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(self.sms_reply_secret_name, max_age=300))

    @model_validator(mode="after")
    def _rotation_overlap_outlives_tokens(self) -> Settings:
        """The previous token key must verify every token it signed: the longest token's life plus the time
        a container may still sign with it (its key cache) must fit in the rotation's overlap."""
        longest = max(self.token_ttl_seconds, self.account_token_ttl_seconds)
        if self.rotation_overlap_seconds <= longest + self.rotation_cache_seconds:
            raise ValueError(
                f"rotation_overlap_seconds ({self.rotation_overlap_seconds}) must exceed the longest token "
                f"lifetime ({longest}) plus rotation_cache_seconds ({self.rotation_cache_seconds}): "
                "a rotation would otherwise end tokens still in use"
            )
        return self

    @property
    def token_secret_name(self) -> str:
        """Secrets Manager secret holding the token signing key on deployed stages (infra creates it)."""
        return f"{self.resource_prefix}/{self.stage}/token-signing-key"

    def signing_secret(self) -> str:
        """The token signing key: explicit setting, the dev key on local stages, else Secrets Manager."""
        if self.token_secret is not None:
            return self.token_secret.get_secret_value()
        if self.is_local:
            return _DEV_TOKEN_SECRET
        from chalicelib.core.token_keys import keys_for

        # The current version, cached rotation_cache_seconds per container (chalicelib.core.token_keys:
        # the previous version still verifies for rotation_overlap_seconds after a rotation).
        return keys_for(self).current.secret


class LocalCredentials(BaseSettings):
    """Credentials for the embedded AWS (moto accepts any); never used against real AWS."""

    model_config = SettingsConfigDict(env_prefix="AWS_", extra="ignore", frozen=True)

    access_key_id: str = Field(default="testing")
    secret_access_key: str = Field(default="testing")
