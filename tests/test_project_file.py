"""playbook.toml checked whole: every section refuses a key it does not know, at its line, with the closest key;
a channel [server] names must exist. A typo that passed silently meant cards and notices went nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_project
from runner.errors import PlaybookError
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

TYPOS = """timezone = "Asia/Shanghai"

[web]
per_hots = 2

[server]
base_url = "http://runner.local"
aproval_channel = "ops"

[server.im.feishu]
encrypt_key_evn = "FEISHU_KEY"

[notify.channels.ops]
platform = "feishu"
url_evn = "OPS_WEBHOOK"
"""


def test_every_section_refuses_an_unknown_key_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "playbook.toml").write_text(TYPOS, encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_project(tmp_path)
    shown = [str(d).replace(str(tmp_path) + "/", "") for d in caught.value.diagnostics]
    assert shown == [
        "playbook.toml:4:1: web.per_hots: unknown key 'per_hots' (did you mean 'per_host'?) (keys here: "
        "allow_hosts, allow_private, per_host, delay, timeout, retries, user_agent)",
        "playbook.toml:8:1: server.aproval_channel: unknown key 'aproval_channel' (did you mean "
        "'approval_channel'?) (keys here: base_url, token, hosts, max_upload_mb, approval_channel, notify_channel, "
            "im)",
        "playbook.toml:11:1: server.im.feishu.encrypt_key_evn: unknown key 'encrypt_key_evn' (did you mean "
        "'encrypt_key_env'?) (keys here: encrypt_key_env, verification_token_env, app_secret_env, token_env, "
        "aes_key_env)",
        "playbook.toml:15:1: notify.channels.ops.url_evn: unknown key 'url_evn' (did you mean 'url_env'?) "
        "(keys here: platform, url_env, secret_env, app_id_env, app_secret_env, chat_id, approvers, corp_id_env, "
        "agent_id, touser, api_base)"]


def test_a_channel_the_server_names_must_be_defined(tmp_path: Path) -> None:
    (tmp_path / "playbook.toml").write_text('[server]\napproval_channel = "opps"\n\n[notify.channels.ops]\n'
                                            'platform = "feishu"\nurl_env = "OPS"\n', encoding="utf-8")
    done = cli("validate", str(ROOT / "playbooks" / "retro.yaml"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ("playbook.toml:2:1: server.approval_channel: no channel 'opps' under [notify.channels] (did you mean "
            "'ops'?) (channels: ops)") in done.stderr


def test_the_readme_configuration_of_approvals_in_chat_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Approvals and notices in Feishu, DingTalk and WeCom", 1)[1]
    toml = block.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "playbook.toml").write_text(toml, encoding="utf-8")
    project = load_project(tmp_path)
    assert project.settings.server.approval_channel == "ops_app" and project.settings.server.notices_to == "ops"
    assert project.settings.notify.channels["ops_app"].platform == "feishu_app"
