"""The model organism: a tiny base/reasoning pair the project trains itself, and its benchmark."""
