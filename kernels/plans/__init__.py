"""Model plans: compile a torch model, gate its precision, save and load it."""
