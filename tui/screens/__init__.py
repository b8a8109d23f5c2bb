"""One module per screen of the guided flow."""
