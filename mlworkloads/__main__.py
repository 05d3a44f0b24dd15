from mlworkloads.cli import app

app(prog_name="mlworkloads")
