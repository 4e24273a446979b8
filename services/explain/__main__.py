"""python -m services.explain: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.explain.app import create_app
from services.explain.settings import ExplainSettings


def main() -> None:
    settings = ExplainSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
