"""`rewardkit <verb>`: a thin layer over the library. Each command parses, calls one function, prints.

Errors a user can fix (`rewardkit.errors.RewardkitError`: bad data, bad config, a model that does not fit) print
one clear line and exit 1; anything else is a bug and keeps its traceback.
"""

import typer

from rewardkit.cli import data, evaluate, score, serve, train

app = typer.Typer(help="Reward modeling for LLM alignment: preference data in, reward model out.",
                  no_args_is_help=True)
data_app = typer.Typer(help="Inspect and prepare preference data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.command()(train.train)
app.command()(train.demo)
app.command("eval")(evaluate.evaluate_command)
app.command()(score.score)
app.command()(serve.serve)
data_app.command("audit")(data.data_audit)
data_app.command("prepare")(data.data_prepare)
