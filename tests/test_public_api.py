"""The public surface: `import pwcli` exports a short, sorted, complete __all__ (httpx's habit)."""

from __future__ import annotations

import types

import pwcli


def test_all_is_sorted() -> None:
    assert pwcli.__all__ == sorted(pwcli.__all__)


def test_all_is_complete_and_exists() -> None:
    public = {
        name for name, value in vars(pwcli).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public | {"__version__"} == set(pwcli.__all__)
    for name in pwcli.__all__:
        assert getattr(pwcli, name) is not None


def test_error_tree() -> None:
    assert issubclass(pwcli.TraceError, pwcli.InputError)
    assert issubclass(pwcli.PluginLoadError, pwcli.InputError)
    assert issubclass(pwcli.BackendError, pwcli.InputError)
    assert issubclass(pwcli.InputError, pwcli.PwcliError)
    assert issubclass(pwcli.GuestTrap, pwcli.PwcliError)


def test_run_accessors() -> None:
    from .conftest import EXAMPLES, TRACES

    run = pwcli.replay(pwcli.load_plugin(EXAMPLES / "myproject.wasm"),
                       pwcli.load_trace(TRACES / "http_4pkts.json"))
    s = run.stream(1)
    assert isinstance(s, pwcli.StreamResult)
    assert s.response_headers == [(":status", "200"), ("rh1", "rv1"), ("content-length", "9"),
                                  ("x-envoy-upstream-service-time", "15"), ("x-wasm-custom", "FOO")]
    assert s.request.header("A") == "B2" and s.request.header("nope") is None
    assert (s.request_body, s.response_body) == (b"", b"ABCDEFGHI")
    assert s.request_headers[-1] == ("a", "B2")
    assert run.logs(1)[-1] == ("info", "onDelete 3")
    assert [e.args for e in run.hostcalls("proxy_add_header_map_value", stream=0)] == [
        {"map": "request_headers", "key": "A", "value": "B2"},
        {"map": "response_headers", "key": "X-Wasm-custom", "value": "FOO"},
    ]
    assert run.callbacks(0) == [
        "proxy_on_context_create", "proxy_on_request_headers", "proxy_on_response_headers",
        "proxy_on_response_body", "proxy_on_response_body", "proxy_on_log", "proxy_on_done",
        "proxy_on_delete",
    ]
    assert run.expectations is None
    assert pwcli.to_json(run)["summary"]["streams"] == 2
