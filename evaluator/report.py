"""report.html: a finished evaluation to look at, one self-contained file beside metrics.json.

The metrics against the baseline and the thresholds (the blessing's checks),
per-class precision / recall / F1 / support, the confusion matrix, the ROC
and precision-recall curves of a binary task, and the examples the model
gets most confidently wrong with their text. Plain HTML, inline CSS and
inline SVG: it opens from a bucket, a laptop or a CI artifact with no
network and no script. Each number carries a `data-metric` attribute naming
where it sits in metrics.json, so a test reads the page back and compares.
"""

from __future__ import annotations

import html
import math
from typing import Any, Dict, List, Optional, Sequence

from bertline import fileio, schema

WRONG_EXAMPLES = 50  # the most confidently wrong examples the report shows

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d2433; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 2em; }
.meta { color: #5b6478; } .verdict { font-size: 1.2em; font-weight: 600; padding: .4em .8em;
  display: inline-block; border-radius: 4px; }
.blessed { background: #dff5e3; color: #1b6b2f; } .unblessed { background: #fde2e1; color: #9b1c1c; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .3em .7em;
  border-bottom: 1px solid #e3e6ee; text-align: right; } th { background: #f4f6fa; }
td.text, th.text { text-align: left; max-width: 640px; } .pass { color: #1b6b2f; }
.fail { color: #9b1c1c; font-weight: 600; } .curves { display: flex; gap: 2em; flex-wrap: wrap; }
figure { margin: 0; } figcaption { color: #5b6478; text-align: center; }
"""


def _e(value: Any) -> str:
  return html.escape(str(value), quote=True)


def _num(value: Optional[float], where: str = "", count: bool = False) -> str:
  """A number as the report shows it (4 decimals; a count whole), tagged with its place in
  metrics.json."""
  if value is None:
    text = "—"
  elif isinstance(value, float) and not math.isfinite(value):
    text = str(value)
  elif count or isinstance(value, int):
    text = f"{value:g}"
  else:
    text = f"{value:.4f}"
  attribute = (f' data-metric="{_e(where)}" data-value="{_e(value)}"'
               if where and value is not None else "")
  return f"<td{attribute}>{text}</td>"


def _summary(metrics: Dict[str, Any], decision: Dict[str, Any]) -> str:
  baseline = metrics.get("baseline") or {}
  rows = []
  for name in ("eval_accuracy", "eval_loss", "macro_f1", "matthews_corrcoef", "binary_f1",
               "micro_f1", "hamming_loss", "macro_roc_auc"):
    if metrics.get(name) is None:  # binary_f1 of a task with more than two labels, ...
      continue
    rows.append(f"<tr><th class=text>{name}</th>{_num(metrics[name], name)}"
                f"{_num(baseline.get(name), f'baseline.{name}') if baseline else ''}</tr>")
  head = "<tr><th class=text>metric</th><th>this model</th>" + (
      "<th>in production</th>" if baseline else "") + "</tr>"
  checks = "".join(
      f"<tr><td class=text>{_e(c['metric'])} ({_e(c['kind'])})</td>{_num(c['value'])}"
      f"{_num(c['bound'])}<td class={'pass' if c['passed'] else 'fail'}>"
      f"{'pass' if c['passed'] else 'FAIL'}</td></tr>" for c in decision.get("checks", []))
  verdict = ("BLESSED" if decision.get("blessed") else "NOT BLESSED")
  reasons = "".join(f"<li>{_e(r)}</li>" for r in decision.get("reasons", []))
  return (f'<p><span class="verdict {"blessed" if decision.get("blessed") else "unblessed"}" '
          f'id="verdict">{verdict}</span></p><ul>{reasons}</ul>'
          f"<h2>Metrics</h2><table>{head}{''.join(rows)}</table>" +
          (f"<h2>Checks</h2><table><tr><th class=text>check</th><th>value</th><th>bound</th>"
           f"<th>result</th></tr>{checks}</table>" if checks else ""))


def _per_class(metrics: Dict[str, Any]) -> str:
  rows = "".join(
      f"<tr><th class=text>{_e(label)}</th>"
      + "".join(_num(metrics[key][label], f"{key}.{label}", count=key == "support")
                for key in ("precision", "recall", "f1", "support")) + "</tr>"
      for label in metrics["labels"])
  return ("<h2>Per class</h2><table><tr><th class=text>label</th><th>precision</th>"
          f"<th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>")


def _confusion(metrics: Dict[str, Any]) -> str:
  if "confusion_matrix" not in metrics:  # a multi-label task: per-label metrics instead
    return ""
  labels, matrix = metrics["labels"], metrics["confusion_matrix"]
  biggest = max([max(row) for row in matrix] + [1])
  cells = []
  for i, (label, row) in enumerate(zip(labels, matrix)):
    tds = []
    for j, count in enumerate(row):
      shade = int(235 - 110 * count / biggest)
      colour = f"rgb({shade},{shade + 10},255)" if i == j else f"rgb(255,{shade},{shade})"
      tds.append(f'<td style="background:{colour}" data-metric="confusion_matrix.{i}.{j}" '
                 f'data-value="{count}">{count}</td>')
    cells.append(f"<tr><th class=text>{_e(label)}</th>{''.join(tds)}</tr>")
  head = "".join(f"<th>{_e(label)}</th>" for label in labels)
  return ("<h2>Confusion matrix</h2><p class=meta>rows: the true label; columns: the "
          f"predicted one.</p><table><tr><th class=text>true \\ predicted</th>{head}</tr>"
          f"{''.join(cells)}</table>")


def _curve(xs: Sequence[float], ys: Sequence[float], title: str, x_name: str, y_name: str,
           start: tuple, ident: str) -> str:
  """An SVG line chart on [0, 1] x [0, 1], from `start` through the points."""
  size, pad = 300, 40
  points = [start] + list(zip(xs, ys))
  path = " ".join(f"{pad + x * size:.1f},{pad + (1 - y) * size:.1f}" for x, y in points)
  ticks = "".join(
      f'<text x="{pad + t * size}" y="{pad + size + 16}" text-anchor="middle">{t:g}</text>'
      f'<text x="{pad - 6}" y="{pad + (1 - t) * size + 4}" text-anchor="end">{t:g}</text>'
      for t in (0, 0.5, 1))
  return (f'<figure><svg id="{ident}" width="{size + 2 * pad}" height="{size + 2 * pad}" '
          f'viewBox="0 0 {size + 2 * pad} {size + 2 * pad}" font-size="11">'
          f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="#fafbfd" '
          f'stroke="#9aa3b5"/>{ticks}'
          f'<polyline points="{path}" fill="none" stroke="#2f5fd0" stroke-width="2"/>'
          f'<text x="{pad + size / 2}" y="{pad + size + 32}" text-anchor="middle">{x_name}</text>'
          f'<text x="12" y="{pad + size / 2}" transform="rotate(-90 12 {pad + size / 2})" '
          f'text-anchor="middle">{y_name}</text></svg><figcaption>{title}</figcaption></figure>')


def _curves(metrics: Dict[str, Any]) -> str:
  roc, pr = metrics.get("roc_curve"), metrics.get("pr_curve")
  if not roc or not roc["fpr"]:
    return ""
  fpr, tpr = [0.0] + roc["fpr"], [0.0] + roc["tpr"]
  auc = sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))
  parts = [_curve(roc["fpr"], roc["tpr"], f"ROC (area {auc:.4f}; positive: "
                  f"{_e(metrics['labels'][1])})", "false positive rate", "true positive rate",
                  (0.0, 0.0), "roc")]
  if pr:
    parts.append(_curve(pr["recall"], pr["precision"], "precision-recall", "recall",
                        "precision", (0.0, pr["precision"][0]), "pr"))
  return f"<h2>Curves</h2><div class=curves>{''.join(parts)}</div>"


def _wrong(examples: List[Dict[str, Any]]) -> str:
  if not examples:
    return "<h2>Wrong examples</h2><p>None: every example is classified correctly.</p>"
  rows = "".join(
      f"<tr><td class=text>{_e(ex['guid'])}</td><td class=text>{_e(ex['label'])}</td>"
      f"<td class=text>{_e(ex['predicted'])}</td>{_num(ex['confidence'])}"
      f"<td class=text>{_e(ex['text_a'])}"
      + (f"<br><i>{_e(ex['text_b'])}</i>" if ex.get("text_b") else "") + "</td></tr>"
      for ex in examples)
  return (f"<h2>The {len(examples)} most confidently wrong examples</h2><p class=meta>Text "
          "decoded from the model's WordPiece ids: the words the model saw.</p>"
          '<table id="wrong"><tr><th class=text>guid</th><th class=text>true</th>'
          "<th class=text>predicted</th><th>confidence</th><th class=text>text</th></tr>"
          f"{rows}</table>")


def render(metrics: Dict[str, Any], decision: Dict[str, Any],
           wrong: List[Dict[str, Any]]) -> str:
  """The report's HTML for an evaluation's metrics.json, blessing.json and wrong examples."""
  title = f"bertline evaluation: {metrics.get('model', '')}"
  meta = (f"split <b>{_e(metrics.get('split', ''))}</b> of {_e(metrics.get('data_dir', ''))}: "
          f"<span data-metric=num_examples data-value={metrics['num_examples']}>"
          f"{metrics['num_examples']}</span> examples"
          + (f"; baseline {_e(decision.get('baseline_model'))}"
             if decision.get("baseline_model") else ""))
  body = (_summary(metrics, decision) + _per_class(metrics) + _confusion(metrics) +
          _curves(metrics) + _wrong(wrong))
  return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
          f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1><p class=meta>{meta}</p>"
          f"{body}</body></html>\n")


def write(output_dir: str, metrics: Dict[str, Any], decision: Dict[str, Any],
          wrong: List[Dict[str, Any]]) -> str:
  path = fileio.join(output_dir, schema.REPORT_FILE)
  fileio.write_text_atomic(path, render(metrics, decision, wrong))
  return path
