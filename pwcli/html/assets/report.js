/* pwcli's report renderer: the HTML report (--format html) and pwcli ui draw with it.
   Every value from the run (plugin output, header values, log lines) is set as text, never as
   markup: el() only ever calls createTextNode / textContent for data. */
(function () {
  "use strict";
  var LEVELS = ["trace", "debug", "info", "warn", "error", "critical"];
  var KINDS = ["callback", "hostcall", "log", "note", "local_reply", "failure"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k];
      else if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function show(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "string") return v;
    return JSON.stringify(v);
  }

  function call(ev) {
    if (ev.kind === "log") return "[" + ev.name + "] " + ((ev.args || {}).message || "");
    var args = ev.args || {};
    var parts = Object.keys(args).map(function (k) { return k + "=" + show(args[k]); });
    return (ev.kind === "callback" ? "\u2192 " : "") + ev.name + "(" + parts.join(", ") + ")";
  }

  function result(ev) {
    var r = ev.result;
    if (r === undefined || r === null) return "";
    if (typeof r === "object" && r.status !== undefined) {
      return r.status + (r.value !== undefined ? " " + show(r.value) : "");
    }
    return show(r);
  }

  function eventRow(ev) {
    var row = el("tr", {"class": "pw-event", "data-kind": ev.kind,
                        "data-level": ev.kind === "log" ? ev.name : ""}, [
      el("td", {"class": "mono", text: String(ev.t_ms)}),
      el("td", {"class": "mono", text: String(ev.ctx)}),
      el("td", {}, [el("span", {"class": "pw-kind " + ev.kind, text: ev.kind})]),
      el("td", {"class": "mono", text: call(ev)}),
      el("td", {"class": "mono", text: result(ev)})]);
    return row;
  }

  function timeline(events, withStream) {
    var body = el("tbody", {}, events.map(eventRow));
    var heads = (withStream ? ["stream"] : []).concat(["ms", "ctx", "kind", "call / log", "result"]);
    return el("table", {"class": "pw-timeline"}, [
      el("thead", {}, [el("tr", {}, heads.map(function (h) { return el("th", {text: h}); }))]), body]);
  }

  /* The headers as the plugin left them, each marked with what it did: added, replaced,
     removed (shown struck through where it stood), untouched. */
  function headerDiff(final, changes, map) {
    var mine = changes.filter(function (c) { return c.map === map; });
    var rows = [];
    var done = {};
    (final || []).forEach(function (pair) {
      var name = pair[0], value = pair[1];
      var change = null;
      for (var i = mine.length - 1; i >= 0; i--) {
        if (mine[i].name === name && mine[i].after === value && !done[i]) { change = mine[i]; done[i] = 1; break; }
      }
      var op = change ? change.op : "same";
      var shown = op === "replace" ? (change.before === null ? "" : change.before + " \u2192 ") + value : value;
      rows.push(el("tr", {"data-op": op, "data-name": name}, [
        el("td", {"class": "op", text: {add: "+", replace: "~", remove: "-", same: ""}[op]}),
        el("td", {"class": "mono", text: name}), el("td", {"class": "mono", text: shown})]));
    });
    mine.forEach(function (c) {
      if (c.op === "remove") {
        rows.push(el("tr", {"data-op": "remove", "data-name": c.name}, [
          el("td", {"class": "op", text: "-"}), el("td", {"class": "mono", text: c.name}),
          el("td", {"class": "mono", text: c.before === null ? "" : c.before})]));
      }
    });
    if (!rows.length) return el("p", {"class": "pw-empty", text: "none"});
    return el("table", {"class": "pw-headers", "data-map": map}, [el("tbody", {}, rows)]);
  }

  function body(label, text) {
    if (!text) return null;
    return el("div", {}, [el("h3", {text: label}), el("pre", {"class": "pw-body", text: text})]);
  }

  function differencesFor(data, stream) {
    var out = [];
    if (data.envoy) data.envoy.differences.forEach(function (d) {
      if (d.stream === stream) out.push("Envoy differs: " + d.where + ": " + d.what +
        " (pwcli " + show(d.pwcli) + ", Envoy " + show(d.envoy) + ")");
    });
    if (data.golden) data.golden.differences.forEach(function (d) {
      if (d.stream === stream) out.push("golden differs: " + d.text);
    });
    return out;
  }

  function streamSection(data, s, events) {
    var resp = s.response || {}, req = s.request || {};
    var status = ((resp.headers || []).filter(function (h) { return h[0] === ":status"; })[0] || [])[1];
    var diffs = differencesFor(data, s.index);
    var parts = [el("h2", {text: "stream #" + s.index + "  " + s.client + " \u2192 " + s.server +
                                 "  " + s.kind + (status ? "  " + status : "")})];
    if (diffs.length) parts.push(el("ul", {"class": "pw-diffs"}, diffs.map(function (d) {
      return el("li", {"class": "pw-diff", text: d}); })));
    if (s.local_reply) parts.push(el("p", {"class": "pw-local", text: "local reply " +
      s.local_reply.status + " " + show(s.local_reply.details || "") + " " + show(s.local_reply.body || "")}));
    if (s.failure) parts.push(el("p", {"class": "pw-failure", text: "failure: " + s.failure.kind +
      " in " + s.failure.callback}));
    if (s.flags && s.flags.length) parts.push(el("p", {text: "flags: " + s.flags.join(", ")}));
    if (s.kind === "http") {
      parts.push(el("h3", {text: "request headers"}), headerDiff(req.headers, s.header_changes, "request_headers"));
      parts.push(body("request body", req.body));
      parts.push(el("h3", {text: "response headers"}), headerDiff(resp.headers, s.header_changes, "response_headers"));
      parts.push(body("response body", resp.body));
    } else {
      parts.push(body("downstream data", s.downstream), body("upstream data", s.upstream));
    }
    parts.push(el("h3", {text: "timeline"}), timeline(events));
    return el("section", {"class": "pw-stream" + (diffs.length ? " has-diff" : ""),
                          "id": "stream-" + s.index, "data-stream": String(s.index)}, parts);
  }

  function chips(summary) {
    var keys = ["streams", "completed", "failed", "incomplete", "local_replies", "callbacks",
                "host_calls", "packets", "end_t_ms", "exit_status"];
    return el("div", {"class": "pw-chips"}, keys.filter(function (k) { return k in summary; }).map(function (k) {
      var bad = (k === "failed" || k === "exit_status" || k === "incomplete") && summary[k];
      return el("span", {"class": bad ? "bad" : "", text: k.replace("_", " ") + ": " + summary[k]});
    }));
  }

  function filterBar(root, streams) {
    var streamSel = el("select", {"class": "pw-f-stream"}, [el("option", {value: "", text: "all streams"})]
      .concat(streams.map(function (s) { return el("option", {value: String(s.index), text: "#" + s.index}); })));
    var kinds = KINDS.map(function (k) {
      return el("label", {}, [el("input", {type: "checkbox", "class": "pw-f-kind", value: k, checked: "checked"}), " " + k]);
    });
    var level = el("select", {"class": "pw-f-level"}, LEVELS.map(function (l) {
      return el("option", {value: l, text: "logs \u2265 " + l}); }));
    var search = el("input", {type: "search", "class": "pw-f-search", placeholder: "search the timeline"});
    var bar = el("div", {"class": "pw-bar"}, [streamSel].concat(kinds, [level, search]));
    function apply() {
      var want = streamSel.value, q = search.value.toLowerCase();
      var on = {}; bar.querySelectorAll(".pw-f-kind").forEach(function (c) { on[c.value] = c.checked; });
      var min = LEVELS.indexOf(level.value);
      root.querySelectorAll(".pw-stream").forEach(function (sec) {
        sec.classList.toggle("hidden", want !== "" && sec.getAttribute("data-stream") !== want);
      });
      root.querySelectorAll("tr.pw-event").forEach(function (row) {
        var kind = row.getAttribute("data-kind"), lv = row.getAttribute("data-level");
        var hide = on[kind] === false || (kind === "log" && LEVELS.indexOf(lv) < min) ||
          (q && row.textContent.toLowerCase().indexOf(q) < 0);
        row.classList.toggle("hidden", !!hide);
      });
    }
    [streamSel, level].forEach(function (n) { n.addEventListener("change", apply); });
    bar.querySelectorAll(".pw-f-kind").forEach(function (n) { n.addEventListener("change", apply); });
    search.addEventListener("input", apply);
    return bar;
  }

  function render(root, data) {
    var r = data.report, streams = r.streams || [];
    var byStream = {};
    (data.timeline || []).forEach(function (ev) {
      var k = ev.stream === null || ev.stream === undefined ? "vm" : String(ev.stream);
      (byStream[k] = byStream[k] || []).push(ev);
    });
    root.textContent = "";
    var head = el("header", {"class": "pw-head"}, [
      el("h1", {text: data.title || ("pwcli replay: " + r.plugin.file)}),
      el("div", {"class": "mono", text: r.plugin.file + " (ABI " + r.plugin.abi + ") on " + r.runtime.name +
        (r.inputs && r.inputs.root_id ? ", root id " + r.inputs.root_id : "")}),
      chips(r.summary)]);
    root.appendChild(head);
    root.appendChild(filterBar(root, streams));
    var main = el("main", {"class": "pw-main"});
    root.appendChild(main);
    if (data.envoy) {
      main.appendChild(el("p", {}, ["pwcli vs Envoy " + data.envoy.version + ": ",
        el("span", {"class": "pw-verdict " + data.envoy.verdict, text: data.envoy.verdict +
          (data.envoy.refused ? " (" + data.envoy.refused + ")" : "")})]));
    }
    if (data.golden) {
      main.appendChild(el("p", {}, ["golden " + data.golden.path + ": ",
        el("span", {"class": "pw-verdict " + (data.golden.ok ? "agree" : "differ"), text: data.golden.status})]));
    }
    var general = differencesFor(data, null);
    if (general.length) main.appendChild(el("ul", {"class": "pw-diffs"}, general.map(function (d) {
      return el("li", {"class": "pw-diff", text: d}); })));
    var notes = (r.warnings || []).concat(r.notes || []);
    if (notes.length) main.appendChild(el("ul", {"class": "pw-notes"}, notes.map(function (n) {
      return el("li", {text: show(n)}); })));
    var rows = streams.map(function (s) {
      var resp = (s.response || {}).headers || [];
      var status = (resp.filter(function (h) { return h[0] === ":status"; })[0] || [])[1] || "";
      var row = el("tr", {"class": "pw-stream-row" + (differencesFor(data, s.index).length ? " has-diff" : ""),
                          "data-stream": String(s.index)}, [
        el("td", {text: "#" + s.index}), el("td", {text: s.kind}),
        el("td", {"class": "mono", text: s.client + " \u2192 " + s.server}),
        el("td", {text: String(status)}),
        el("td", {text: s.local_reply ? String(s.local_reply.status) : ""}),
        el("td", {text: s.failure ? s.failure.kind : ""}),
        el("td", {text: String((s.header_changes || []).length)})]);
      row.addEventListener("click", function () {
        var target = document.getElementById("stream-" + s.index);
        if (target) target.scrollIntoView();
      });
      return row;
    });
    main.appendChild(el("h2", {text: "streams"}));
    main.appendChild(rows.length ? el("table", {"class": "pw-streams"}, [
      el("thead", {}, [el("tr", {}, ["#", "kind", "client \u2192 server", "status", "local reply",
        "failure", "changes"].map(function (h) { return el("th", {text: h}); }))]),
      el("tbody", {}, rows)]) : el("p", {"class": "pw-empty", text: "no streams"}));
    streams.forEach(function (s) { main.appendChild(streamSection(data, s, byStream[String(s.index)] || [])); });
    var metrics = r.metrics || {};
    var names = Object.keys(metrics);
    if (names.length) {
      main.appendChild(el("h2", {text: "metrics"}));
      main.appendChild(el("table", {"class": "pw-metrics"}, [el("tbody", {}, names.map(function (n) {
        return el("tr", {}, [el("td", {"class": "mono", text: n}), el("td", {"class": "mono", text: show(metrics[n])})]);
      }))]));
    }
    var shared = data.shared_data || [];
    if (shared.length) {
      main.appendChild(el("h2", {text: "shared data"}));
      main.appendChild(el("table", {"class": "pw-shared"}, [
        el("thead", {}, [el("tr", {}, ["key", "value", "cas"].map(function (h) { return el("th", {text: h}); }))]),
        el("tbody", {}, shared.map(function (d) {
          return el("tr", {}, [el("td", {"class": "mono", text: d.key}), el("td", {"class": "mono", text: d.value}),
                               el("td", {"class": "mono", text: String(d.cas)})]);
        }))]));
    }
    main.appendChild(el("section", {"class": "pw-stream", "data-stream": "vm", "id": "stream-vm"}, [
      el("h2", {text: "VM (start-up, root context)"}), timeline(byStream.vm || [])]));
  }

  /* pwcli ui: a timeline that fills while the run goes on, before the whole report replaces it. */
  function live(root) {
    root.textContent = "";
    var table = timeline([], true);
    root.appendChild(el("main", {"class": "pw-main"}, [el("h2", {text: "running\u2026"}), table]));
    var tbody = table.querySelector("tbody");
    return function (ev) {
      var row = eventRow(ev);
      row.insertBefore(el("td", {text: ev.stream === null ? "vm" : "#" + ev.stream}), row.firstChild);
      tbody.appendChild(row);
    };
  }

  window.PW = {render: render, live: live, el: el};
  var blob = document.getElementById("pwcli-data");
  if (blob) render(document.getElementById("pwcli-report"), JSON.parse(blob.textContent));
})();
