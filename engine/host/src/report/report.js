// Draws the run report from the run's data (the JSON above): everything on the page is built
// here, from the same model the summary and JUnit files come from.
(function () {
  "use strict";
  var run = JSON.parse(document.getElementById("run-data").textContent);
  var app = document.getElementById("app");
  app.textContent = "";

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function took(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return ms + "ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + "s";
    var m = Math.floor(s / 60);
    return m + "m " + Math.round(s - 60 * m) + "s";
  }
  function outcome(o) { return o || "running"; }
  function table(cls, head, rows) {
    return el("table", { "class": cls }, [
      el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows.map(function (r) {
        return el("tr", {}, r.map(function (c) {
          return c && c.nodeType ? el("td", {}, [c]) : el("td", { text: c === null || c === undefined ? "" : String(c) });
        }));
      }))
    ]);
  }

  var total = Math.max(run.duration_ms, 1);
  var byId = {};
  var children = {};
  run.steps.forEach(function (s) {
    byId[s.id] = s;
    var p = s.parent === null || s.parent === undefined ? "root" : s.parent;
    (children[p] = children[p] || []).push(s);
  });
  function end(s) { return s.end_ms === null || s.end_ms === undefined ? run.duration_ms : s.end_ms; }
  // A row of the timeline is a playbook step or a parallel task; waits, Helm processes and
  // hooks are segments on the row of the step they ran in.
  function isRow(s) { return s.kind === "step" || s.kind === "task"; }
  function rowOf(id) {
    var s = byId[id];
    while (s && !isRow(s)) s = byId[s.parent];
    return s ? s.id : null;
  }
  var segments = {};
  function addSeg(rowId, seg) { if (rowId !== null) (segments[rowId] = segments[rowId] || []).push(seg); }
  run.steps.forEach(function (s) {
    if (!isRow(s)) addSeg(rowOf(s.parent), { name: s.name, kind: s.kind, start: s.start_ms, end: end(s), outcome: s.outcome });
  });
  run.phases.forEach(function (p) {
    addSeg(p.step === null || p.step === undefined ? null : rowOf(p.step),
      { name: p.name, kind: p.kind, start: p.start_ms, end: p.end_ms, outcome: p.outcome });
  });
  function pct(ms) { return (100 * Math.min(Math.max(ms, 0), total) / total).toFixed(3) + "%"; }
  function span(e, start, stop) {
    e.style.left = pct(start);
    e.style.width = "calc(" + pct(stop - start) + " + 0px)";
    return e;
  }

  // Header.
  app.appendChild(el("h1", {}, [
    el("span", { "class": "badge " + outcome(run.outcome), id: "outcome", text: outcome(run.outcome) }), " ",
    run.playbook || "kmsctl run"
  ]));
  app.appendChild(el("div", { "class": "meta", text:
    "started " + run.started_at + " · " + took(run.duration_ms) +
    (run.exit_code === null || run.exit_code === undefined ? "" : " · exit code " + run.exit_code) +
    " · " + run.steps.length + " steps" }));

  // The run's error first: it is what a failed run's reader looks for.
  if (run.errors.length) {
    var errs = el("section", { id: "errors" }, [el("h2", { text: "Error" })]);
    run.errors.forEach(function (e) {
      var at = e.file ? e.file + ":" + e.line + ":" + e.col : "";
      errs.appendChild(el("div", { "class": "error", "data-kind": e.kind }, [
        el("div", {}, [el("b", { text: e.kind }), " " + e.message, at ? el("span", { "class": "small", text: "  " + at }) : null]),
        el("details", { "class": "diagnostic" }, [el("summary", { text: "the error's report (source lines and call chain)" }),
          el("pre", { text: e.diagnostic })])
      ]));
    });
    app.appendChild(errs);
  }

  // Timeline.
  var tl = el("section", { id: "timeline" }, [el("h2", { text: "Timeline" })]);
  tl.appendChild(el("div", { "class": "legend" }, ["step", "helm", "wait", "hook", "failed"].map(function (k) {
    return el("span", {}, [el("i", { style: "background: var(--" + k + ")" }), k]);
  })));
  var box = el("div", { "class": "timeline" });
  var axis = el("div", { "class": "axis" }, [el("div", {}), el("div", { "class": "track" }), el("div", {})]);
  var ticks = 8;
  for (var t = 0; t <= ticks; t++) {
    var ms = Math.round(total * t / ticks);
    var tick = el("span", { "class": "tick", text: took(ms) });
    tick.style.left = pct(ms);
    axis.children[1].appendChild(tick);
  }
  box.appendChild(axis);
  // Parallel tasks side by side in their labels' order (party-2 before party-10), whatever
  // order they started in; other steps in start order.
  var natural = new Intl.Collator(undefined, { numeric: true });
  function rowsOf(id) {
    var rows = (children[id] || []).filter(isRow);
    if (rows.every(function (r) { return r.kind === "task"; })) rows.sort(function (a, b) { return natural.compare(a.name, b.name); });
    return rows;
  }
  function drawRow(s, depth) {
    var track = el("div", { "class": "track" });
    track.appendChild(span(el("div", { "class": "bar " + outcome(s.outcome), title: s.name + " " + took(end(s) - s.start_ms) }), s.start_ms, end(s)));
    (segments[s.id] || []).forEach(function (g) {
      var seg = el("div", { "class": "seg " + g.kind + (g.outcome === "failed" ? " failed" : ""), "data-kind": g.kind,
        title: g.name + " " + took(g.end - g.start) + (g.outcome && g.outcome !== "ok" ? " (" + g.outcome + ")" : "") });
      track.appendChild(span(seg, g.start, g.end));
    });
    var name = el("div", { "class": "name", title: s.name + (s.error ? ": " + s.error : "") }, [
      el("span", { "class": "mark-" + outcome(s.outcome), text: s.outcome === "ok" ? "✓ " : s.outcome === "failed" ? "✗ " : s.outcome === "cancelled" ? "⊘ " : "… " }),
      s.name
    ]);
    name.style.paddingLeft = (depth * 14) + "px";
    box.appendChild(el("div", { "class": "row", "data-kind": s.kind, "data-name": s.name, "data-label": s.label || null,
      "data-outcome": outcome(s.outcome), "data-segments": String((segments[s.id] || []).length) },
      [name, track, el("div", { "class": "took", text: took(end(s) - s.start_ms) })]));
    rowsOf(s.id).forEach(function (c) { drawRow(c, depth + 1); });
  }
  rowsOf("root").forEach(function (s) { drawRow(s, 0); });
  if (!(children.root || []).length) box.appendChild(el("p", { "class": "small", text: "The run had no steps." }));
  tl.appendChild(box);
  app.appendChild(tl);

  // Failures with their reports inline.
  if (run.failures.length) {
    var fs = el("section", { id: "failures" }, [el("h2", { text: "Failures (" + run.failures.length + ")" })]);
    run.failures.forEach(function (f) {
      var rep = f.report || {};
      var div = el("div", { "class": "failure", "data-object": f.object, "data-label": f.label || null }, [
        el("h3", {}, [f.label ? "[" + f.label + "] " : "", f.object]),
        el("div", { "class": "reason", text: f.reason }),
        el("pre", { "class": "summary", text: f.summary })
      ]);
      (rep.pods || []).forEach(function (p) {
        div.appendChild(el("h3", { text: "Pod " + p.name + " — " + p.phase + (p.node ? " on " + p.node : "") + (p.blocker ? ": " + p.blocker : "") }));
        if ((p.containers || []).length) {
          div.appendChild(table("containers", ["container", "state", "last state", "restarts", "ready", "message"], p.containers.map(function (c) {
            return [(c.init ? "init " : "") + c.name, c.state, c.last_state || "", c.restart_count, c.ready ? "yes" : "no", c.message || ""];
          })));
        }
        if ((p.missing_pull_secrets || []).length) div.appendChild(el("div", { text: "missing image pull secrets: " + p.missing_pull_secrets.join(", ") }));
        (p.logs || []).forEach(function (l) {
          div.appendChild(el("details", { "class": "logs" }, [
            el("summary", { text: "last log lines of " + l.pod + "/" + l.container + (l.previous ? " (previous)" : "") + " — " + (l.lines || []).length + " lines" }),
            el("pre", { text: (l.lines || []).join("\n") + (l.error ? "\n" + l.error : "") })
          ]));
        });
      });
      (rep.claims || []).forEach(function (c) {
        div.appendChild(el("div", { text: "PersistentVolumeClaim " + c.name + ": " + c.phase + (c.storage_class ? " (class " + c.storage_class + ")" : "") }));
      });
      if ((rep.events || []).length) {
        div.appendChild(el("h3", { text: "Events" }));
        div.appendChild(table("events", ["time", "type", "reason", "object", "message", "count"], rep.events.map(function (e) {
          return [e.time || "", e.type, e.reason, e.object, e.message, e.count];
        })));
      }
      (rep.notes || []).forEach(function (n) { div.appendChild(el("div", { "class": "small", text: "note: " + n })); });
      if (f.dir) div.appendChild(el("div", { "class": "small", text: "files: " + f.dir }));
      fs.appendChild(div);
    });
    app.appendChild(fs);
  }

  // Waits: what each waited for, and how long.
  var waits = run.steps.filter(function (s) { return s.kind === "wait"; });
  if (waits.length) {
    var ws = el("section", { id: "waits" }, [el("h2", { text: "Waits (" + waits.length + ")" })]);
    ws.appendChild(table("waits", ["", "task", "wait", "objects", "took", "waited last for"], waits.map(function (w) {
      return [el("span", { "class": "mark-" + outcome(w.outcome), text: outcome(w.outcome) }), w.label || "",
        w.name, w.detail || "", el("span", { "class": "num", text: took(end(w) - w.start_ms) }), w.error || w.progress || ""];
    })));
    app.appendChild(ws);
  }

  // Decisions (canary promotions and rollbacks), when there are any.
  if (run.decisions.length) {
    var ds = el("section", { id: "decisions" }, [el("h2", { text: "Decisions" })]);
    ds.appendChild(table("decisions", ["at", "task", "subject", "decision", "why"], run.decisions.map(function (d) {
      return [took(d.at_ms), d.label || "", d.subject, d.decision, d.reason];
    })));
    app.appendChild(ds);
  }

  if (run.warnings.length) {
    var wl = el("section", { id: "warnings" }, [el("h2", { text: "Warnings and errors logged (" + run.warnings.length + ")" })]);
    wl.appendChild(table("warnings", ["at", "level", "task", "message"], run.warnings.map(function (w) {
      return [took(w.at_ms), w.level, w.label || "", w.message];
    })));
    app.appendChild(wl);
  }

  var params = Object.keys(run.params || {});
  if (params.length) {
    var ps = el("section", { id: "params" }, [el("h2", { text: "Parameters" })]);
    ps.appendChild(table("params", ["name", "value"], params.map(function (k) {
      var v = run.params[k];
      return [k, typeof v === "string" ? v : JSON.stringify(v)];
    })));
    app.appendChild(ps);
  }
  if (run.closed.length) {
    app.appendChild(el("section", { id: "closed" }, [el("h2", { text: "Closed at the end" }),
      el("ul", {}, run.closed.map(function (c) { return el("li", { text: c }); }))]));
  }
})();
