"""``leaderboard.html``: one self-contained page (styles, script, data and charts inline; no
network). Every table sorts by any column in the browser; a detector's name leads to its rows in
every table and to the galleries of the runs that drew its crops; and the user's question (an
embedder, a time budget per image, the evidence that matters) marks the detectors within the
budget that no other one within it beats significantly there, with the figures that decide it."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from .board import DATASET_NAMES, Ranking, Table

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 .3em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child,th:first-child,td.t{text-align:left}
th{background:#f1f1f1;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
tr:target,tr.hl{background:#fff3b0} .note{color:#555;font-size:12px;max-width:1100px}
.pick{background:#d8f5d0;font-weight:600} .beaten{color:#a00} img{max-width:100%;border:1px solid #ddd}
fieldset{border:1px solid #bbb;margin:.6em 0;padding:.5em 1em} label{margin-right:1em}
"""

SCRIPT = """
const DATA = JSON.parse(document.getElementById('data').textContent);
function cellValue(td){
  const v=td.dataset.sort;if(v===undefined||v==='')return null;const n=Number(v);return isNaN(n)?v:n;}
function sortBy(th){
  const table=th.closest('table'), body=table.tBodies[0], i=[...th.parentNode.children].indexOf(th);
  const dir=th.getAttribute('aria-sort')==='descending'?'ascending':'descending';
  table.querySelectorAll('th').forEach(h=>h.removeAttribute('aria-sort'));th.setAttribute('aria-sort',dir);
  const rows=[...body.rows];
  rows.sort((a,b)=>{const x=cellValue(a.cells[i]),y=cellValue(b.cells[i]);
    if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
    const c=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
    return dir==='ascending'?c:-c;});
  rows.forEach(r=>body.appendChild(r));
}
document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
function highlight(name){document.querySelectorAll('tr.hl').forEach(r=>r.classList.remove('hl'));
  document.querySelectorAll(`tr[data-detector="${CSS.escape(name)}"]`).forEach(r=>r.classList.add('hl'));}
document.querySelectorAll('a.det').forEach(a=>a.addEventListener('click',()=>highlight(a.textContent)));
function answer(){
  const embedder=document.getElementById('q-embedder').value;
  const budget=parseFloat(document.getElementById('q-budget').value);
  const cats=[...document.querySelectorAll('input.q-cat:checked')].map(c=>c.value);
  const source=document.getElementById('q-strict').checked?DATA.strict_rankings:DATA.rankings;
  const groups=source.filter(g=>g.embedder===embedder&&cats.includes(g.category));
  const times=DATA.times[embedder]||{};
  const within=Object.keys(times).filter(d=>isNaN(budget)||times[d]<=budget).sort((a,b)=>times[a]-times[b]);
  let out='<table id="q-result"><thead><tr><th>detector</th><th>ms / img</th>'+
    groups.map(g=>`<th>${g.label} acc %</th>`).join('')+'<th>answer</th></tr></thead><tbody>';
  for(const d of within){
    let ok=groups.length>0, cells='';
    for(const g of groups){
      const r=g.results.find(x=>x.detector===d);
      if(!r){ok=false;cells+='<td data-sort="">no result</td>';continue;}
      const by=(r.beaten_by||[]).filter(e=>within.includes(e));
      if(r.beaten_by===null)ok=false;
      if(by.length)ok=false;
      cells+=`<td data-sort="${r.accuracy}">${(100*r.accuracy).toFixed(2)}`+
        (by.length?` <span class="beaten">below ${by.join(', ')}</span>`:'')+'</td>';
    }
    out+=`<tr data-detector="${d}" class="${ok?'pick':''}"><td>${d}</td><td data-sort="${times[d]}">`+
      `${times[d].toFixed(2)}</td>${cells}<td>${ok?'not beaten: a choice':''}</td></tr>`;
  }
  out+='</tbody></table>';
  const box=document.getElementById('q-answer');
  box.innerHTML=within.length?out:'<p>No detector within that budget.</p>';
  box.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
}
document.querySelectorAll('#question select,#question input').forEach(e=>e.addEventListener('input',answer));
answer();
"""


def table_html(table: Table, detector_links: bool = True) -> str:
    """``table`` with its title and note; each row carries its detector (``data-detector``) and an
    id (``<anchor>--<detector>``) that the detectors' index links to."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        detector = row[table.detector_column].text if table.detector_column is not None else ""
        cells = []
        for i, cell in enumerate(row):
            text = html.escape(cell.text)
            if i == table.detector_column and detector_links:
                text = f'<a class="det" href="#detector-{html.escape(detector)}">{text}</a>'
            sort = "" if cell.sort is None and cell.text == "" else (cell.text if cell.sort is None else cell.sort)
            kind = ' class="t"' if cell.sort is None else ""  # text, left-aligned
            cells.append(f'<td{kind} data-sort="{html.escape(str(sort))}">{text}</td>')
        ident = f' id="{html.escape(table.anchor)}--{html.escape(detector)}" data-detector="{html.escape(detector)}"' \
            if detector else ""
        body.append(f"<tr{ident}>{''.join(cells)}</tr>")
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f'<h2 id="{html.escape(table.anchor)}">{html.escape(table.title)}</h2>'
            f'<table id="table-{html.escape(table.anchor)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{note}')


def question_data(ranks: list[Ranking], strict_ranks: list[Ranking], times: dict[str, dict[str, float]],
                  category: dict[str, str]) -> dict:
    """What the page's script needs: per ranking (as scored, and strict) its detectors' accuracy
    and who beats them significantly, and each embedder's detectors' time per image."""
    def listed(rankings: list[Ranking]) -> list[dict]:
        ordered = sorted(rankings, key=lambda k: (_order(category[k.evidence]), k.evidence))
        return [{"evidence": k.evidence, "label": DATASET_NAMES.get(k.evidence, k.evidence),
                 "category": category[k.evidence], "embedder": k.embedder,
                 "results": [{"detector": r.detector, "accuracy": r.accuracy, "beaten_by": k.beaten_by.get(r.detector)}
                             for r in k.results]} for k in ordered]

    return {"times": times, "rankings": listed(ranks), "strict_rankings": listed(strict_ranks)}


def category_order(categories) -> list[str]:
    """The evidence categories a user picks from, frontal and profiles first."""
    return sorted(set(categories), key=lambda c: (_order(c), c))


def _order(category: str) -> int:
    return {"frontal": 0, "profiles": 1}.get(category, 2)


def question_html(embedders: list[str], categories: list[str]) -> str:
    options = "".join(f"<option>{html.escape(e)}</option>" for e in embedders)
    boxes = "".join(f'<label><input type="checkbox" class="q-cat" value="{html.escape(c)}"'
                    f'{" checked" if i == 0 else ""}> {html.escape(c)}</label>' for i, c in enumerate(categories))
    return ('<section id="question"><h2>Which detector, for my embedder and my cameras?</h2><fieldset>'
            f'<label>embedder <select id="q-embedder">{options}</select></label>'
            '<label>time budget, ms per image <input id="q-budget" type="number" min="0" step="any" '
            'placeholder="no limit"></label><label><input type="checkbox" id="q-strict" checked> strict: a face '
            'not found is a wrong decision (no fallback crop)</label><br>evidence that matters: '
            f'{boxes}</fieldset><div id="q-answer"></div><p class="note">Marked: within the budget, and no other '
            'detector within it is significantly more accurate on any chosen evidence (McNemar on the pairs\' '
            'decisions, Holm-corrected over each ranking\'s pairs). Strict: the accuracy and decisions of a '
            'system that has no fallback crop for a face not found (the pair is decided "different"); unticked, '
            'the protocol\'s figures, where that crop (LFW\'s median landmarks) flatters methods that miss faces '
            'on centred images. Times: the first data set\'s run.</p></section>')


def detector_index_html(tables: list[Table], galleries: dict[str, list[str]]) -> str:
    """Per detector, links to its row in every table and to the galleries that show its crops."""
    names = sorted({row[t.detector_column].text for t in tables if t.detector_column is not None for row in t.rows})
    items = []
    for name in names:
        rows = [f'<a href="#{html.escape(t.anchor)}--{html.escape(name)}">{html.escape(t.title)}</a>'
                for t in tables if t.detector_column is not None and any(r[t.detector_column].text == name
                                                                         for r in t.rows)]
        crops = [f'<a href="{html.escape(g)}">crops</a>' for g in galleries.get(name, [])]
        items.append(f'<li id="detector-{html.escape(name)}"><b>{html.escape(name)}</b>: '
                     f'{" · ".join(rows + crops)}</li>')
    return f'<h2 id="detectors">Detectors</h2><ul>{"".join(items)}</ul>'


def inline_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def leaderboard_html(title: str, intro: str, tables: list[Table], charts: list[tuple[str, Path]], data: dict,
                     embedders: list[str], categories: list[str], galleries: dict[str, list[str]]) -> str:
    figures = "".join(f'<figure><img alt="{html.escape(c)}" src="{inline_png(p)}"><figcaption>{html.escape(c)}'
                      f'</figcaption></figure>' for c, p in charts)
    payload = json.dumps(data).replace("</", "<\\/")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>'
            f'{question_html(embedders, categories)}'
            f'{"".join(table_html(t) for t in tables)}'
            f'{"<h2 id=charts>Charts</h2>" + figures if figures else ""}'
            f'{detector_index_html(tables, galleries)}'
            f'<script type="application/json" id="data">{payload}</script><script>{SCRIPT}</script></body></html>\n')
