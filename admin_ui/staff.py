"""Staff accounts: passwords, first-run setup, which classes a teacher has, demo passwords.

Plain functions over the database, without Flask, so that the command line and the tests can
call them; the pages in :mod:`admin_ui.accounts` and :mod:`admin_ui.auth` are thin over them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from admin_ui.models import ApiToken, TeacherClass
from policies.categories import LANGUAGES
from policies.database import utcnow
from policies.errors import KalkanError
from policies.models import Role, SchoolClass, StaffUser

MIN_PASSWORD_LENGTH = 8
PASSWORD_METHOD = "scrypt"  # werkzeug's default; tests pass a cheaper one to stay fast
# A hash to check against when the user does not exist, so that a wrong user name takes as
# long as a wrong password and does not tell an attacker which names exist.
_DUMMY_HASH = generate_password_hash("no such user", method="pbkdf2:sha256:1000")

TOKEN_PREFIX = "kalkan_"  # makes a leaked key easy to find in logs and repositories
DEMO_PASSWORD = "kalkan-demo"
# Classes the demo teachers teach besides their own class (see policies.demo).
DEMO_TEACHING = {"aigul": ["7A", "8A"], "bakyt": ["11A", "9A"], "dana": ["4A", "2A"]}


@dataclass(frozen=True)
class Account:
    """A signed-in person (by cookie or API token) as Flask-Login sees them, detached from the
    database session that loaded them."""

    id: int
    username: str
    full_name: str
    role: str
    language: str | None
    fingerprint: str
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    @classmethod
    def of(cls, user: StaffUser) -> Account:
        return cls(user.id, user.username, user.full_name, user.role, user.language,
                   password_fingerprint(user))

    def get_id(self) -> str:
        return f"{self.id}:{self.fingerprint}"


def hash_password(password: str, method: str = PASSWORD_METHOD) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise KalkanError(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters",
                          hint="choose a longer one; a few words make a good password")
    return generate_password_hash(password, method=method)


def verify_password(user: StaffUser | None, password: str) -> bool:
    """True if ``user`` is active, has a password and ``password`` is it (constant work)."""
    if user is None or not user.password_hash:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(user.password_hash, password) and user.active


def password_fingerprint(user: StaffUser) -> str:
    """Changes when the password does: a signed-in cookie carries it, so that changing a
    password (or taking it away) signs that account out everywhere."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def needs_setup(db: Session) -> bool:
    """First run: no account can sign in yet."""
    return db.scalar(select(StaffUser.id).where(StaffUser.password_hash.is_not(None))
                     .limit(1)) is None


def create_account(db: Session, *, username: str, full_name: str, role: Role, password: str,
                   language: str | None = None, method: str = PASSWORD_METHOD) -> StaffUser:
    """A new account; an existing one without a password (seeded staff) is claimed instead."""
    username = username.strip().lower()
    if not username or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise KalkanError(f"{username!r} is not a user name",
                          hint="use letters, digits, '.', '-' and '_', e.g. aigul")
    if not full_name.strip():
        raise KalkanError("the full name is empty", hint="write the person's name")
    if language is not None and language not in LANGUAGES:
        raise KalkanError(f"no such language {language!r}", hint=f"one of {', '.join(LANGUAGES)}")
    user = db.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is not None and user.password_hash:
        raise KalkanError(f"the user name {username!r} is taken", hint="choose another one")
    if user is None:
        user = StaffUser(username=username)
        db.add(user)
    user.full_name, user.role, user.language = full_name.strip(), role.value, language
    user.password_hash = hash_password(password, method)
    user.active = True
    db.flush()
    return user


def teacher_class_ids(db: Session, user: StaffUser) -> list[str]:
    """The classes ``user`` teaches: their own class and those assigned, in grade order."""
    assigned = select(TeacherClass.class_id).where(TeacherClass.teacher_id == user.id)
    rows = db.scalars(select(SchoolClass.id).where(or_(
        SchoolClass.class_teacher_id == user.id, SchoolClass.id.in_(assigned)))
        .order_by(SchoolClass.grade, SchoolClass.id))
    return list(rows)


def set_teacher_classes(db: Session, user: StaffUser, class_ids: list[str]) -> None:
    db.execute(delete(TeacherClass).where(TeacherClass.teacher_id == user.id))
    for cid in dict.fromkeys(class_ids):
        if db.get(SchoolClass, cid) is None:
            raise KalkanError(f"there is no class {cid!r}")
        db.add(TeacherClass(teacher_id=user.id, class_id=cid))
    db.flush()


def give_demo_passwords(db: Session, password: str = DEMO_PASSWORD, *,
                        method: str = PASSWORD_METHOD) -> list[str]:
    """Give the demo staff (policies.demo) ``password`` and their classes; for ``kalkan demo``.

    Only accounts that have no password yet get one, so a real password is never replaced.
    Returns the user names that got the password.
    """
    from policies.demo import DEMO_STAFF

    changed = []
    for username, *_ in DEMO_STAFF:
        user = db.scalar(select(StaffUser).where(StaffUser.username == username))
        if user is None or user.password_hash:
            continue
        user.password_hash = hash_password(password, method)
        changed.append(username)
        extra = [c for c in DEMO_TEACHING.get(username, []) if db.get(SchoolClass, c)]
        if extra and not db.scalar(select(TeacherClass.class_id)
                                   .where(TeacherClass.teacher_id == user.id).limit(1)):
            set_teacher_classes(db, user, extra)
    db.commit()
    return changed


def _token_hash(key: str) -> str:
    # The keys are long and random: a plain SHA-256 is enough, and it can be looked up.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_token(db: Session, user: StaffUser, name: str) -> tuple[ApiToken, str]:
    """A new API key acting as ``user``; returns the row and the key, which is not kept."""
    if not name.strip():
        raise KalkanError("the token has no name", hint="name what will use it, e.g. e-diary")
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name.strip()[:100], token_hash=_token_hash(key),
                     created_at=utcnow())
    db.add(token)
    db.flush()
    return token, key


def token_user(db: Session, authorization: str) -> tuple[StaffUser, ApiToken] | None:
    """The active account behind ``Authorization: Bearer <key>``, or None."""
    scheme, _sep, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.startswith(TOKEN_PREFIX):
        return None
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(key.strip())))
    if token is None or token.revoked_at is not None:
        return None
    user = db.get(StaffUser, token.user_id)
    if user is None or not user.active:
        return None
    token.last_used_at = utcnow()
    db.commit()
    return user, token
