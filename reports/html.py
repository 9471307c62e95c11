"""One self-contained HTML page per run: no network, no CDN, data in the page as JSON.

Per comparison: the prompt with its marked tokens; the rows side by side, tokens that
differ from the baseline highlighted; hovering or focusing a generated token shows its top
alternatives, its KL from the baseline and its attention on the marks, and colours the
text before it by that token's attention (mean over layers and heads, when the run
captured attention); a heatmap per row (canvas) with token labels on hover and the
lens-minus-baseline difference; inline SVG charts of attention on the marks and KL per
step; and how to reproduce it. The CSS and JS are written for this page and kept small.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from lenscope.reports import conversation as cr
from lenscope.reports.svg import COLORS, line_chart
from lenscope.storage import datafile
from lenscope.views.attention import rollout

CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:80em;margin:1.5em auto;padding:0 1em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.9em}.meta code{white-space:pre-wrap}
.prompt,.row .out{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.9}
.rows{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(18em,100%),1fr));gap:.8em}
.row{border:1px solid #ccc;border-radius:6px;padding:.5em .7em;min-width:0}.row h3{margin:0 0 .3em;font-size:1em}
h1,h2,h3,td,th,summary,code,.meta{overflow-wrap:anywhere}
.t{border-radius:3px;padding:0 1px}.t.mark{outline:2px solid #e6a800}.t.diff{background:#f5c6e8}
.t.gen{cursor:help}.t.gen:focus,.t.gen:hover{outline:2px solid #333}.t.q{outline:2px solid #000}
#tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #888;border-radius:4px;padding:.4em .6em;
font:13px ui-monospace,monospace;box-shadow:0 2px 8px #0003;display:none;max-width:28em;z-index:9}
.charts svg{background:#fafafa;border:1px solid #eee;margin-right:1em}
.heat{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.heat canvas{border:1px solid #ccc}
.heat label{display:block;font-size:.85em;color:#555}
.turn{margin:.8em 0 .3em}.turn mark{background:#ffe08a}.pass{color:#2a7d2a}.fail{color:#c0392b;font-weight:bold}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}caption{text-align:left;color:#555}
"""

JS = r"""
const DATA = JSON.parse(document.getElementById('data').textContent);
const tip = document.getElementById('tip');
const esc = s => String(s).replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'})[c]);
const shown = s => String(s).replace(/\n/g, '⏎');
function viridis(x){x=Math.max(0,Math.min(1,x));const s=[[68,1,84],[59,82,139],[33,145,140],[94,201,98],[253,231,37]];
  const p=x*(s.length-1),i=Math.min(Math.floor(p),s.length-2),f=p-i;
  return 'rgb('+s[i].map((v,k)=>Math.round(v+(s[i+1][k]-v)*f)).join(',')+')';}
function diverging(x){x=Math.max(-1,Math.min(1,x));const a=x<0?[33,102,172]:[178,24,43];const f=Math.abs(x);
  return 'rgb('+a.map(v=>Math.round(247+(v-247)*f)).join(',')+')';}
function pick(rec, cls){const s=document.querySelector('section[data-c="'+DATA.results.indexOf(rec)+'"] select.'+cls);
  return s?s.value:null;}
const DETAIL=new Map();  // row -> its layer x head bytes, decoded once
function layerHead(row, l, h){  // T x T of one layer (one head, or the mean of its heads)
  const d=row.detail;if(!DETAIL.has(row))DETAIL.set(row,Uint8Array.from(atob(d.b64),c=>c.charCodeAt(0)));
  const b=DETAIL.get(row),t=d.t,tri=t*(t+1)/2,hs=h==='mean'?[...Array(d.heads).keys()]:[+h];
  const m=Array.from({length:t},()=>new Array(t).fill(0));
  for(const k of hs){const o=(l*d.heads+k)*tri;let p=0;
    for(let i=0;i<t;i++)for(let j=0;j<=i;j++)m[i][j]+=b[o+p++]/255/hs.length;}
  return m;}
function meanRow(rec, r){const a=rec.attention,row=a&&a.rows[r];if(!row)return null;
  const l=pick(rec,'layer');
  if(row.detail&&l!==null&&l!=='all'){const h=pick(rec,'head');const key=l+':'+h;row._m=row._m||{};
    return row._m[key]=row._m[key]||layerHead(row,+l,h);}
  return row[pick(rec,'src')||'mean']||row.mean;}
function colour(sec, rec, r, q){  // the text before token q (prompt + row r), by q's attention
  const m=meanRow(rec,r); if(!m) return; const w=m[q]; const top=Math.max(...w.slice(0,q+1))||1;
  sec.querySelectorAll('.prompt .t, .row[data-r="'+r+'"] .t').forEach(el=>{const i=+el.dataset.i;
    if(i<q){el.style.background=viridis(w[i]/top);el.style.color=w[i]/top>.6?'#000':'#fff';}
    el.classList.toggle('q',i===q);});}
function clear(sec){sec.querySelectorAll('.t').forEach(el=>{el.style.background='';el.style.color='';el.classList.remove('q');});}
function show(el){
  const sec=el.closest('section'),rec=DATA.results[+sec.dataset.c],r=+el.closest('.row').dataset.r,t=+el.dataset.t;
  const row=rec.rows[r],alts=(row.top_alternatives[t]||[]).map(a=>esc(shown(a.token))+' '+(a.prob??0).toFixed(3)).join('<br>');
  const kl=row.kl_from_baseline[t],am=row.attention_to_marks[t];
  tip.innerHTML='<b>'+esc(shown(row.tokens[t]))+'</b> · step '+t+'<br>'+alts+
    '<br>KL from baseline: '+(kl==null?'– (prefix differs)':kl.toFixed(4))+
    (am==null?'':'<br>attention on marks: '+am.toFixed(3))+(meanRow(rec,r)?'':'<br><i>no attention captured</i>');
  const b=el.getBoundingClientRect();tip.style.display='block';
  tip.style.left=Math.min(b.left,innerWidth-300)+'px';tip.style.top=(b.bottom+6)+'px';
  clear(sec);colour(sec,rec,r,rec.prompt_tokens.length+t);}
document.querySelectorAll('.t.gen').forEach(el=>{
  el.addEventListener('mouseenter',()=>show(el));el.addEventListener('focus',()=>show(el));
  const hide=()=>{tip.style.display='none';clear(el.closest('section'));};
  el.addEventListener('mouseleave',hide);el.addEventListener('blur',hide);});
function heat(canvas){
  const sec=canvas.closest('section'),rec=DATA.results[+sec.dataset.c],sel=canvas.parentNode.querySelector('select.rowsel');
  const draw=()=>{const r=+sel.value.split(':')[0],diff=sel.value.endsWith(':diff');const m=meanRow(rec,r),b=meanRow(rec,0);
    const n=diff?Math.min(m.length,b.length):m.length,px=Math.max(2,Math.floor(360/n)),ctx=canvas.getContext('2d');
    canvas.width=canvas.height=n*px;let top=0;
    for(let i=0;i<n;i++)for(let j=0;j<=i;j++){const v=diff?m[i][j]-b[i][j]:m[i][j];top=Math.max(top,Math.abs(v));}
    for(let i=0;i<n;i++)for(let j=0;j<n;j++){const v=diff?m[i][j]-b[i][j]:m[i][j];
      ctx.fillStyle=j>i?'#fff':diff?diverging(v/(top||1)):viridis(v/(top||1));ctx.fillRect(j*px,i*px,px,px);}
    canvas.onmousemove=e=>{const i=Math.floor(e.offsetY/px),j=Math.floor(e.offsetX/px),tok=rec.attention.rows[r].tokens;
      if(i>=n||j>=n)return;const v=diff?m[i][j]-b[i][j]:m[i][j];
      tip.innerHTML=esc(shown(tok[i]))+' → '+esc(shown(tok[j]))+': '+v.toFixed(4);tip.style.display='block';
      tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px';};
    canvas.onmouseleave=()=>{tip.style.display='none';};};
  sel.addEventListener('change',draw);
  sec.querySelectorAll('select.src,select.layer,select.head').forEach(s=>s.addEventListener('change',draw));draw();}
document.querySelectorAll('.heat canvas').forEach(heat);
// #t=comparison-row-step focuses that token; &layer=L&head=H (or src=rollout) picks the attention shown
const at=location.hash.match(/^#t=(\d+)-(\d+)-(\d+)((?:&\w+=\w+)*)$/);
if(at){const sec=document.querySelector('section[data-c="'+at[1]+'"]');
  for(const [k,v] of (at[4]||'').slice(1).split('&').filter(Boolean).map(x=>x.split('='))){
    const s=sec&&sec.querySelector('select.'+(k==='src'?'src':k));if(s){s.value=v;s.dispatchEvent(new Event('change'));}}}
if(at){const el=document.querySelector('section[data-c="'+at[1]+'"] .row[data-r="'+at[2]+'"] .t[data-t="'+at[3]+'"]');
  if(el){el.scrollIntoView({block:'center'});el.focus();}}
"""


def attention_row(name: str, tokens: list[str], probs: np.ndarray, heads: bool = False) -> dict[str, Any]:
    """What the report keeps of one row's attention (layers, heads, T, T): the mean over
    layers and heads and the rollout through all layers (T x T each); with `heads`, every
    layer's and head's causal half too, as bytes (p x 255, rounded) in base64, which the
    page's layer and head selectors read. Off by default: at SmolLM2's 30 x 9 heads it is
    about 1.2 MB per row of 100 tokens."""
    out = {"name": name, "tokens": tokens, "mean": np.round(probs.mean(axis=(0, 1)), 4).tolist(),
           "rollout": np.round(rollout(probs), 4).tolist()}
    if heads:
        n_layers, n_heads, t, _ = probs.shape
        lower = probs[:, :, *np.tril_indices(t)]  # (layers, heads, t(t+1)/2), row by row
        out["detail"] = {"layers": n_layers, "heads": n_heads, "t": t,
                         "b64": base64.b64encode(np.round(lower * 255).astype(np.uint8).tobytes()).decode()}
    return out


def _tokens(tokens: Sequence[str], start: int, classes: Sequence[str], extra: str = "") -> str:
    return "".join(f"<span class='t {c}' data-i='{start + i}'{extra.format(t=i)}>{html.escape(tok)}</span>"
                   for i, (tok, c) in enumerate(zip(tokens, classes)))


def _section(c: int, rec: dict[str, Any]) -> str:
    marks = set(rec["marked_token_indices"])
    n_prompt = len(rec["prompt_tokens"])
    prompt = _tokens(rec["prompt_tokens"], 0, ["mark" if i in marks else "" for i in range(n_prompt)])
    base = rec["rows"][0]["token_ids"]
    rows = []
    for r, row in enumerate(rec["rows"]):
        classes = ["gen" + (" diff" if r and (t >= len(base) or base[t] != tid) else "")
                   for t, tid in enumerate(row["token_ids"])]
        spans = _tokens(row["tokens"], n_prompt, classes, " data-t='{t}' tabindex='0'")
        lens = "" if row["lens"] is None else (f"<details class='meta'><summary>lens stack</summary><code>"
                                                f"{html.escape(datafile.dumps(row['lens']['stack']))}</code></details>")
        div = "" if row["first_divergence"] is None else f" · differs from step {row['first_divergence']}"
        rows.append(f"<div class='row' data-r='{r}'><h3 style='color:{COLORS[r % len(COLORS)]}'>"
                    f"{html.escape(row['name'])}</h3><div class='meta'>{len(row['token_ids'])} tokens{div}</div>"
                    f"{lens}<div class='out'>{spans}</div></div>")
    charts = line_chart([(r, row["attention_to_marks"]) for r, row in enumerate(rec["rows"])], "attention on marks per step") \
        + line_chart([(r, row["kl_from_baseline"]) for r, row in enumerate(rec["rows"]) if r], "KL(baseline ‖ row) per step")
    heat = ""
    if rec.get("attention"):
        options = "".join(f"<option value='{r}'>{html.escape(row['name'])}</option>" for r, row in enumerate(rec["rows"]))
        options += "".join(f"<option value='{r}:diff'>{html.escape(row['name'])} − baseline</option>"
                           for r, row in enumerate(rec["rows"]) if r)
        sources = "<option value='mean'>mean over layers and heads</option>" + (
            "<option value='rollout'>rollout through all layers</option>" if "rollout" in rec["attention"]["rows"][0]
            else "")
        detail = rec["attention"]["rows"][0].get("detail")
        pickers = ""
        if detail:  # layer and head selectors (run with report_heads = true)
            layers = "<option value='all'>all layers</option>" + "".join(
                f"<option value='{i}'>layer {i}</option>" for i in range(detail["layers"]))
            heads = "<option value='mean'>mean of heads</option>" + "".join(
                f"<option value='{h}'>head {h}</option>" for h in range(detail["heads"]))
            pickers = (f"<select class='layer' aria-label='layer'>{layers}</select> "
                       f"<select class='head' aria-label='head'>{heads}</select> ")
        heat = (f"<div class='heat'><div><label>attention (queries down, keys across; also colours the text on "
                f"hover)</label><select class='src' aria-label='attention source'>{sources}</select> {pickers}"
                f"<select class='rowsel' aria-label='row'>{options}</select><br><canvas></canvas></div></div>")
    return (f"<section data-c='{c}'><h2>{html.escape(rec['comparison'])}</h2>"
            f"<p class='meta'>{html.escape(rec['model'])} · {html.escape(rec['backend'])} · "
            f"{html.escape(str(rec.get('precision', 'native')))} · T={rec['temperature']:g} · seed {rec['seed']} · "
            f"marked: {len(marks)} token(s)</p><div class='prompt'>{prompt}</div>"
            f"<div class='rows'>{''.join(rows)}</div><div class='charts'>{charts}</div>{heat}</section>")


def render(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The page: `results` are the records of results.jsonl, `meta` says how to reproduce them."""
    chart = partial(line_chart, x_label="turn", first=1)
    sections = [cr.html_section(c, rec, chart) if cr.is_conversation(rec) else _section(c, rec)
                for c, rec in enumerate(results)]
    page_data = [cr.light(rec) if cr.is_conversation(rec) else rec for rec in results]  # the script reads no turns
    data = datafile.dumps({"meta": meta, "results": page_data}).replace("</", "<\\/")  # never closes the script
    info = "".join(f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in meta.items())
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lenscope report</title>"
            f"<meta name='viewport' content='width=device-width'><style>{CSS}</style></head><body>"
            f"<h1>lenscope report</h1><ul class='meta'>{info}</ul>"
            "<p class='meta'>Hover or focus (Tab) a generated token: its top alternatives, its KL from the baseline "
            "and its attention on the marks; with captured attention the text before it is coloured by where it "
            "looked. Pink tokens differ from the baseline at that step; outlined prompt tokens are marked.</p>"
            + cr.html_summary(cr.summary(results), chart) + "".join(sections)
            + f"<div id='tip' role='tooltip'></div><script type='application/json' id='data'>{data}</script>"
            f"<script>{JS}</script></body></html>\n")
