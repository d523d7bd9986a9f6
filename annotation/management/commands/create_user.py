import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.roles import ROLES
from annotation.services.users import user_create


class Command(BaseCommand):
    help = "Create a TagStudio user with a role; prints the API token as the last word of the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", default="")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    def handle(self, *args, **options) -> None:
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("the passwords do not match")
        if not password:
            raise CommandError("the password must not be empty")
        try:
            user, token = user_create(
                username=options["username"], password=password, role=options["role"], email=options["email"]
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created {options['role']} {user.username}.")
        self.stdout.write(f"API token: {token}")
