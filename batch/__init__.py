"""Work over many comparisons, from files: experiments (`lenscope run`), searches, trees,
the score parts they rank by, sharding over `mlx.launch` and diffs between two runs."""
