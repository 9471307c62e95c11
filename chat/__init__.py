"""Chat: the model's own chat template (`templates`) and multi-turn conversations whose
marks are characters of messages, re-tokenized at every turn (`conversation`)."""
