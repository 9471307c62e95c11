"""The help screen: every key, grouped by where it works."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# lenscope keys

| where | key | does |
|---|---|---|
| anywhere | `ctrl+r` | run the comparison (baseline + every variant) |
| anywhere | `escape` | cancel a run (partial output stays) |
| anywhere | `f2` `f3` `f4` | compose / compare / heatmap tabs |
| anywhere | `ctrl+s` / `ctrl+o` | save / open a session (JSON) |
| anywhere | `ctrl+p` | command palette: every action |
| anywhere | `f1` | this help · `ctrl+q` quits |
| prompt | `ctrl+k` | mark every token the selection overlaps |
| compose | `ctrl+t` | chat mode on/off: the model's chat template around the prompt (optional system message) |
| tokens | `←` `→` `space` `c` | move · mark/unmark · clear marks (click works too) |
| variants | `a` `e` `t` `x` | add (picker) · edit · edit as spec · remove |
| variants | `ctrl+↑` `ctrl+↓` | reorder |
| variants | `l` / `w` | load / write a lens file (.toml/.json) |
| compare | `←` `→` `↑` `↓` | step through tokens / rows (columns scroll): alternatives show below |
| heatmap | `[` `]` `{` `}` | layer − + · head − + (past the last head: mean) |
| heatmap | `r` `m` | next row · mode: lens / baseline / difference |
| heatmap | `z`, arrows | fit (mean-pool long sequences) or scroll at 1:1, one row or column a key |
| heatmap | `PgUp` `PgDn` `Home` `End` | scroll a page of queries / to the first / to the last |
| heatmap | `c` | charts on / off (on a small terminal they take the heatmap's place) |

Marked ("important") tokens are what `emphasis` attends to more.
In chat mode the tokens show the whole templated prompt: the template's own tokens are
dimmed and cannot be marked; marks stay on the same words when chat mode is toggled.
Tokens that differ from the baseline at the same step are highlighted in magenta.
Results turn *stale* when the prompt, marks, variants or settings change after a run.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss(None)", "close")]
    CSS = "HelpScreen { align: center middle; } HelpScreen VerticalScroll { width: 90%; max-width: 96; " \
          "height: 90%; border: thick $accent; background: $surface; }"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
