from rewardkit.cli.app import app

app()
