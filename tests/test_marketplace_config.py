"""``check-config`` on the Weibo and marketplace sections: every problem listed at once,
no secret echoed, and the example file's one-line setups valid once secrets are set."""

from __future__ import annotations

from pathlib import Path

from tests.test_settings import clean_env, run_cli

SECRETS = ("top-secret-71", "top-session-72", "jos-token-73", "pdd-secret-74", "wb-token-75")


def test_check_config_lists_every_problem_of_the_new_sections(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        "[connectors.taobao]\n"
        f'app_key = "12345678"\napp_secret = "{SECRETS[0]}"\n'
        'sign_method = "sha1"\npage_size = 500\n'
        "[connectors.jd]\n"
        f'app_key = "jd-app"\napp_secret = "x"\naccess_token = "{SECRETS[2]}"\n'
        "interval_seconds = 0\n"
        "[connectors.pinduoduo]\n"
        f'client_id = "pdd-client"\naccess_token = "{SECRETS[3]}"\n'
        "[connectors.weibo]\n"
        f'access_token = "{SECRETS[4]}"\nendpoints = ["comments/by_me"]\n'
        "[connectors.weibo_dm]\nmax_skew_seconds = 0\n"
        '[connectors.douyin_shop]\napp_key = "7123"\napp_secret = "s"\nsign_method = "sha1"\n'
        f'[connectors.douyin_shop.extra]\nsession = "{SECRETS[1]}"\n'
    )
    result = run_cli("check-config", "--config", str(config), env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    for where in (
        "connectors.taobao.session",
        "connectors.taobao.sign_method",
        "connectors.taobao.page_size",
        "connectors.jd.interval_seconds",
        "connectors.pinduoduo.client_secret",
        "connectors.weibo.endpoints",
        "connectors.weibo_dm.app_secret",
        "connectors.douyin_shop.sign_method",
        "connectors.douyin_shop.extra",
    ):
        assert where in result.stderr, where
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout


def test_a_good_marketplace_configuration_is_reported_valid(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[connectors.taobao]\napp_key = "12345678"\nsign_method = "hmac-sha256"\n'
        '[connectors.jd]\napp_key = "jd-app"\n'
        '[connectors.pinduoduo]\nclient_id = "pdd-client"\n'
        "[connectors.weibo]\n"
        "[connectors.weibo_dm]\n"
        '[connectors.douyin_shop]\napp_key = "7123"\n'
    )
    secrets = {
        "GATEWAY_CONNECTORS__TAOBAO__APP_SECRET": "a",
        "GATEWAY_CONNECTORS__TAOBAO__SESSION": "b",
        "GATEWAY_CONNECTORS__JD__APP_SECRET": "c",
        "GATEWAY_CONNECTORS__JD__ACCESS_TOKEN": "d",
        "GATEWAY_CONNECTORS__PINDUODUO__CLIENT_SECRET": "e",
        "GATEWAY_CONNECTORS__PINDUODUO__ACCESS_TOKEN": "f",
        "GATEWAY_CONNECTORS__WEIBO__ACCESS_TOKEN": "g",
        "GATEWAY_CONNECTORS__WEIBO_DM__APP_SECRET": "h",
        "GATEWAY_CONNECTORS__DOUYIN_SHOP__APP_SECRET": "i",
    }
    result = run_cli(
        "check-config", "--config", str(config), env=clean_env(**secrets), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "channels douyin_shop, jd, pinduoduo, taobao, weibo, weibo_dm" in result.stdout
