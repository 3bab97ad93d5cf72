"""One module per ``hf-simcit`` subcommand; each defines ``register(subparsers)``.

Commands are thin: they parse arguments or a recipe and call a library function.
"""
