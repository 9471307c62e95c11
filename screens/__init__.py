"""Textual screens and widgets: what a person sees and touches. Domain code lives in app/."""
