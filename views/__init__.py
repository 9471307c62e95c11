"""What the views show, without Textual: the maths over captures (attention shares, rollout,
logit lens, head roles, hidden-state geometry) and pure Rich renderables (heatmap, head map,
attention-coloured text, logit-lens table). tui/ wraps each in a thin widget."""
