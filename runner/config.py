"""Project configuration: `playbook.toml` in the working directory, overridden by `PLAYBOOK_*`.

Secrets come only from the environment: the config names the variable (`api_key_env`), never the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from runner.errors import Diagnostic, PlaybookError, did_you_mean, framed
from runner.i18n import _
from runner.messages import clean_location, join_location, plain

CONFIG_FILE = "playbook.toml"
LOCAL = "local"
# Environment variable litellm reads for each provider prefix; others use <PREFIX>_API_KEY.
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "deepseek": "DEEPSEEK_API_KEY",
                 "dashscope": "DASHSCOPE_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                 "gemini": "GEMINI_API_KEY", "moonshot": "MOONSHOT_API_KEY",
                 "zhipuai": "ZHIPUAI_API_KEY", "volcengine": "VOLCENGINE_API_KEY",
                 "openrouter": "OPENROUTER_API_KEY", "ollama": ""}


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="litellm model id, e.g. deepseek/deepseek-chat, or 'local'")
    api_base: str | None = None
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    concurrency: int = Field(8, ge=1)
    rpm: int | None = Field(None, ge=1, description="requests per minute (per rpm_window seconds); on a team server "
                                                    "it holds across all workers together")
    rpm_window: float = Field(60.0, gt=0, description="seconds `rpm` counts over: 60 for a per-minute limit, 1 for "
                                                      "a provider that limits requests per second")
    input_price: float | None = Field(None, description="per million input tokens, project currency")
    output_price: float | None = Field(None, description="per million output tokens, project currency")
    structured_output: bool | None = Field(None, description="send the JSON Schema as response_format; "
                                                             "default: what litellm says it supports")
    vision: bool | None = Field(None, description="takes images (llm steps' `images:`); default: what litellm's "
                                                  "model table says")

    def api_key(self) -> str:
        """The key to send: the variable's value; "none" for a named endpoint without one (OpenAI-compatible local
        servers often need no key, and the SDK insists on some value)."""
        key = os.environ.get(env, "") if (env := self.key_env()) else ""
        return key or ("none" if self.api_base else "")

    def key_env(self) -> str:
        if self.api_key_env is not None:
            return self.api_key_env
        provider = self.model.split("/", 1)[0] if "/" in self.model else "openai"
        return PROVIDER_KEYS.get(provider, f"{provider.upper()}_API_KEY")


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow_hosts: list[str] = Field(default_factory=list, description="if set, only these hosts (and "
                                                                     "their subdomains) may be fetched")
    allow_private: list[str] = Field(default_factory=list, description="private addresses tools may reach: ranges "
                                     "('10.0.0.0/8'), addresses or host names ('intranet.example'); loopback, the "
                                     "local network and cloud metadata are refused otherwise")
    per_host: int = Field(2, ge=1, description="requests in flight per host")
    delay: float = Field(0.5, ge=0, description="seconds between requests to one host")
    timeout: float = Field(20.0, gt=0)
    retries: int = Field(3, ge=1)
    user_agent: str | None = None


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="schedule id, e.g. morning_trends")
    playbook: str = Field(description="playbook file, relative to the project")
    cron: str = Field(description="five-field cron expression, e.g. '0 9 * * *'")
    timezone: str | None = Field(None, description="default: the project timezone")
    inputs: dict[str, Any] = Field(default_factory=dict)
    catch_up: Literal["once", "skip"] | None = None


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbooks: list[str] = Field(default_factory=lambda: ["playbooks/*.yaml"],
                                 description="files whose `triggers:` are scheduled (globs, project-relative)")
    catch_up: Literal["once", "skip"] = Field("once", description="missed times: one run, or none")
    grace: float = Field(300.0, ge=0, description="seconds after its time that a run still counts as on time")


class UiSettings(BaseModel):
    """What a person reads: the language of the CLI, the pages, the notices and the reports."""

    model_config = ConfigDict(extra="forbid")
    language: Literal["zh_CN", "en"] | None = Field(None, description="zh_CN or en (default: the locale, else "
                                                                      "zh_CN); read by runner.i18n")


class LocalSettings(BaseModel):
    """The embedded llama.cpp model (`local`)."""

    model_config = ConfigDict(extra="forbid")
    threads: int | None = Field(None, ge=1, description="CPU threads it may use (default: every core, at low "
                                                       "priority, so the machine stays usable; fewer leaves more "
                                                       "room for other work)")
    notice_after: float = Field(60.0, gt=0, description="seconds a call may go without a reply before the console "
                                                        "says the model is still working (and how to speed it up)")
    context: int = Field(8192, ge=512, description="context window in tokens")


class TraceSettings(BaseModel):
    """OpenTelemetry traces of every run this project's processes drive: a span per run, step, map batch, LLM call
    and tool call (runner/observe/traces.py). Off unless an endpoint is given."""

    model_config = ConfigDict(extra="forbid")
    otlp_endpoint: str | None = Field(None, description="an OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318 (Jaeger, "
                                                       "Phoenix, an OpenTelemetry collector) or Langfuse's "
                                                       "…/api/public/otel; spans go to <endpoint>/v1/traces. "
                                                       "Headers (a key) come from OTEL_EXPORTER_OTLP_HEADERS")
    service_name: str = Field("playbook-runner", description="the service the spans are filed under")


class StoreSettings(BaseModel):
    """Where runs are kept. Default: SQLite files and run folders under `state_dir`, one machine."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, description="postgresql://user:password@host:port/db — a team server's store "
                                             "(every worker, the scheduler and the web server use the same one)")
    artifacts: str | None = Field(None, description="folder for run folders (<artifacts>/runs: events, files a "
                                                   "run writes) and uploaded input files (<artifacts>/uploads); on "
                                                   "a team server a volume every worker and the web server mount "
                                                   "at the same path. Default: the state_dir")


class QueueSettings(BaseModel):
    """The Celery broker that hands run work to `playbook worker` processes (a team server)."""

    model_config = ConfigDict(extra="forbid")
    broker: str | None = Field(None, description="redis://host:port/db — with it, runs started by `run --detach`, "
                                                "the web page, the API, IM callbacks and the scheduler go to "
                                                "workers")
    map_chunk: int = Field(2000, ge=1, description="a map over more items than this is split into chunks of "
                                                   "this many items that any worker may run")
    visibility_timeout: float = Field(3600.0, gt=0, description="seconds before Redis hands a task whose worker "
                                                                 "vanished (kill -9, a lost machine) to another "
                                                                 "worker")
    heartbeat: float = Field(10.0, gt=0, description="seconds between the signs of life a process writes on the "
                                                     "runs and chunks it drives; four missed ones and others may "
                                                     "take over")
    stuck_after: float = Field(600.0, gt=0, description="seconds a run's process may make no progress (its event "
                                                        "loop not answering) before it stops claiming the run, so "
                                                        "another worker or `playbook resume` takes it over")


class ChannelConfig(BaseModel):
    """`[notify.channels.<name>]`: a group's robot (a webhook URL) or an app (cards whose buttons call back)."""
    model_config = ConfigDict(extra="forbid")
    platform: Literal["feishu", "lark", "dingtalk", "wecom", "slack", "feishu_app", "lark_app", "wecom_app"] = \
        "feishu"
    url_env: str | None = Field(None, description="robots: the variable holding the webhook URL")
    secret_env: str | None = Field(None, description="DingTalk robots: the signing secret's variable; wecom_app: "
                                                     "the app secret's")
    app_id_env: str | None = Field(None, description="feishu_app / lark_app: the app id's variable")
    app_secret_env: str | None = Field(None, description="feishu_app / lark_app: the app secret's variable")
    chat_id: str | None = Field(None, description="feishu_app / lark_app: the group the cards go to; with "
                                                  "dingtalk and wecom_app too: a button pressed in any other "
                                                  "conversation (a forwarded card) decides nothing")
    approvers: list[str] = Field(default_factory=list, description="who may decide from this channel's cards, "
                                                                   "by the platform's user id (Feishu open_id, "
                                                                   "DingTalk staffId, WeCom userid); empty: "
                                                                   "anyone in the conversation")
    corp_id_env: str | None = Field(None, description="wecom_app: the corp id's variable")
    agent_id: int | None = Field(None, description="wecom_app: the app's agent id")
    touser: str = Field("@all", description="wecom_app: who receives the card")
    api_base: str | None = Field(None, description="apps: the platform's API (a private deployment)")


class NotifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)


class CallbackSecrets(BaseModel):
    """`[server.im.<platform>]`: the variables holding what the platform's callbacks are checked against."""
    model_config = ConfigDict(extra="forbid")
    encrypt_key_env: str | None = None
    verification_token_env: str | None = None
    app_secret_env: str | None = None
    token_env: str | None = None
    aes_key_env: str | None = None


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str | None = Field(None, description="where the server is reached: links in cards and notices")
    token: str | None = Field(None, description="the API and page token (or PLAYBOOK_SERVER_TOKEN)")
    hosts: list[str] = Field(default_factory=list, description="more names this server answers for")
    max_upload_mb: float = Field(100.0, gt=0, description="the largest request body (an uploaded input file) the "
                                                          "server takes; beyond it: 413")
    approval_channel: str | None = Field(None, description="where approval cards go: a [notify.channels] name")
    notify_channel: str | None = Field(None, description="where done / failed notices go (default: the approval "
                                                         "channel)")
    im: dict[Literal["feishu", "dingtalk", "wecom"], CallbackSecrets] = Field(default_factory=dict)

    @property
    def notices_to(self) -> str | None:
        return self.notify_channel if self.notify_channel is not None else self.approval_channel


class ProjectFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    usd_rate: float = Field(7.2, description="currency units per USD, for litellm's USD prices")
    state_dir: str = ".playbook"
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    paths: dict[str, list[str]] = Field(default_factory=dict, description="write: extra writable paths; read: "
                                                                         "extra readable paths (the project "
                                                                         "folder always is)")
    server: ServerSettings = Field(default_factory=ServerSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    web: WebSettings = Field(default_factory=WebSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    local: LocalSettings = Field(default_factory=LocalSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    trace: TraceSettings = Field(default_factory=TraceSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)

    def unknown_channels(self) -> list[tuple[tuple[str, ...], str]]:
        """(location, message) for a channel [server] names that [notify.channels] does not define: cards and
        notices would go nowhere, silently."""
        defined = list(self.notify.channels)
        found: list[tuple[tuple[str, ...], str]] = []
        for key in ("approval_channel", "notify_channel"):
            name = getattr(self.server, key)
            if name and name not in defined:
                found.append((("server", key), _("no channel '{name}' under [notify.channels]{hint} (channels: "
                                                 "{channels})").format(
                                                   name=name, hint=did_you_mean(name, defined),
                                                   channels=', '.join(defined) or 'none')))
        return found


@dataclass
class Project:
    root: Path
    settings: ProjectFile
    notices: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.root / self.settings.state_dir

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def checkpoint_path(self) -> Path:
        """LangGraph checkpoints: a file of their own, so its async writer never waits on ours."""
        return self.state_dir / "checkpoints.db"

    @property
    def artifacts_dir(self) -> Path:
        """Where run folders and uploads live: `[store] artifacts` (a shared volume on a team server), else the
        state folder."""
        named = self.settings.store.artifacts
        return (self.root / Path(named).expanduser()) if named else self.state_dir

    @property
    def runs_root(self) -> Path:
        return self.artifacts_dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_root / run_id

    @property
    def writable_paths(self) -> tuple[Path, ...]:
        return tuple(self.root / p for p in self.settings.paths.get("write", []))

    @property
    def readable_paths(self) -> tuple[Path, ...]:
        return tuple(self.root / p for p in self.settings.paths.get("read", []))

    def resolve_model(self, alias: str) -> tuple[str, ModelConfig]:
        """Alias → (alias actually used, config). `default` falls back to `local` with no key."""
        models = self.settings.models
        local = models.get(LOCAL, ModelConfig(model=LOCAL, concurrency=1))
        if alias == LOCAL:
            return LOCAL, local
        config = models.get(alias) or ModelConfig(model=alias)
        if alias == "default" and (alias not in models or not _has_key(config)):
            reason = (_("no model 'default' in playbook.toml") if alias not in models
                      else _("{value} is not set").format(value=config.key_env()))
            notice = _("model 'default' → embedded 'local' model ({reason}; answers are smoke-test quality)").format(
                         reason=reason)
            if notice not in self.notices:
                self.notices.append(notice)
            return LOCAL, local
        return alias, config  # an unknown alias is reported by llm.py when it is used

    def secret_values(self) -> list[str]:
        """Every key value this project could send, so events and files can be scrubbed of them."""
        names = {m.key_env() for m in self.settings.models.values()} | set(PROVIDER_KEYS.values())
        return [v for n in names if n and (v := os.environ.get(n)) and len(v) >= 6]


def _has_key(config: ModelConfig) -> bool:
    """Whether the alias can be called. A model on a named endpoint (`api_base`: a vLLM, Ollama or fake server)
    is tried without a key: such servers often need none, and one that does answers 401, which names the
    variable to set — better than silently swapping in the embedded model."""
    env = config.key_env()
    return config.model == LOCAL or bool(config.api_base) or not env or bool(os.environ.get(env))


def load_project(root: Path | None = None) -> Project:
    """The project: `root`, else the folder PLAYBOOK_PROJECT names (`--project DIR` sets it), else the working
    directory. Its runs, journal and checkpoints live under its `.playbook/` folder."""
    if root is None and (named := os.environ.get("PLAYBOOK_PROJECT")):
        root = Path(named).expanduser()
        if not root.is_dir():
            raise PlaybookError(_("PLAYBOOK_PROJECT (or --project) names '{named}', which is not a folder").format(
                                    named=named))
    root = (root or Path.cwd()).resolve()
    path = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise PlaybookError([Diagnostic(str(path), 0, 0, _("invalid TOML: {exc}").format(exc=exc))]) from None
    _apply_env(data)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        settings = ProjectFile.model_validate(data)
    except PydanticValidationError as exc:
        raise PlaybookError([_diagnostic(path, text, err) for err in exc.errors()]) from None
    if problems := settings.unknown_channels():
        raise PlaybookError([Diagnostic(str(path), *toml_position(text, loc), framed(".".join(loc), message))
                             for loc, message in problems])
    return Project(root, settings)


def _diagnostic(path: Path, text: str, error: Any) -> Diagnostic:
    """One config mistake, at its line in playbook.toml; an unknown key lists the section's keys and suggests the
    closest (`[server] aproval_channel` → approval_channel)."""
    loc = tuple(str(p) for p in clean_location(error.get("loc", ())))
    where = join_location(loc)
    if error.get("type") == "extra_forbidden":
        valid = _keys_at(ProjectFile, loc[:-1])
        message = _("unknown key '{name}'{hint} (keys here: {joined})").format(
                      name=loc[-1], hint=did_you_mean(loc[-1], valid), joined=', '.join(valid))
    else:
        message = plain(error)
    return Diagnostic(str(path), *toml_position(text, loc), framed(where, message))


def _keys_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The keys the config model takes at `loc` (table names and map keys like a channel's name skipped)."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) \
            else None
        if field is None:
            continue  # a key of a dict section ([models.<alias>], [notify.channels.<name>])
        current = _model_in(field.annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The BaseModel a field holds, directly or as the values of a dict or items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(getattr(annotation, "__args__", ())):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def toml_position(text: str, loc: tuple[str, ...]) -> tuple[int, int]:
    """(line, column) of the key at `loc` in a TOML text — under its `[a.b]` table, or dotted, or inline — as near
    as a plain reading finds it; (0, 0) when it is not written there (a value from the environment)."""
    lines = text.splitlines()
    for cut in range(len(loc) - 1, -1, -1):
        table, key = loc[:cut], loc[cut] if cut < len(loc) else ""
        start = 0
        if table:
            header = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(re.escape(p) for p in table) + r"\s*\]+")
            start = next((n + 1 for n, line in enumerate(lines) if header.match(line)), -1)
            if start < 0:
                continue
        written = re.compile(r"^\s*" + re.escape(key) + r"\s*[=.]")
        for n in range(start, len(lines)):
            if lines[n].lstrip().startswith("["):
                break
            if written.match(lines[n]):
                return n + 1, lines[n].index(key) + 1
        if table:
            return start, 1
    return 0, 0


def _apply_env(data: dict[str, Any]) -> None:
    """PLAYBOOK_TIMEZONE, PLAYBOOK_STATE_DIR, PLAYBOOK_STORE_URL, PLAYBOOK_ARTIFACTS, PLAYBOOK_BROKER_URL;
    PLAYBOOK_MODEL_<ALIAS>, PLAYBOOK_API_BASE_<ALIAS>,
    PLAYBOOK_API_KEY_ENV_<ALIAS> set an alias's model id, endpoint and key variable."""
    for name in ("timezone", "currency", "state_dir"):
        if value := os.environ.get(f"PLAYBOOK_{name.upper()}"):
            data[name] = value
    for variable, section, key in (("PLAYBOOK_STORE_URL", "store", "url"), ("PLAYBOOK_ARTIFACTS", "store", "artifacts"),
                                   ("PLAYBOOK_BROKER_URL", "queue", "broker")):
        if value := os.environ.get(variable):
            data.setdefault(section, {})[key] = value
    models = data.setdefault("models", {})
    prefixes = {"PLAYBOOK_MODEL_": "model", "PLAYBOOK_API_BASE_": "api_base",
                "PLAYBOOK_API_KEY_ENV_": "api_key_env"}
    for key, value in os.environ.items():
        for prefix, field_name in prefixes.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                models.setdefault(key[len(prefix):].lower(), {})[field_name] = value
    for alias, entry in list(models.items()):
        if "model" not in entry:
            entry["model"] = alias
