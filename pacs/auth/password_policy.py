"""Which new passwords are refused: too short, the user's own name, or among the most common.

Guessing starts with the most common passwords; NIST SP 800-63B (5.1.1.2)
asks a verifier to refuse those. The bundled list is small on purpose: the
top of public breach-frequency lists, with the keyboard walks, years and
local words (Vietnamese, the product's own name) a guesser tries first.
"""

from __future__ import annotations

MIN_LENGTH = 8

_COMMON_TEXT = """
password password1 password12 password123 password1234 passw0rd p@ssw0rd p@ssword
12345678 123456789 1234567890 12345678910 0123456789 11111111 00000000 88888888 66666666
99999999 22222222 12341234 11223344 87654321 98765432 147258369 123123123 123321123
qwertyui qwertyuiop qwerty123 qwerty12 1q2w3e4r 1q2w3e4r5t 1qaz2wsx zaq12wsx asdfghjkl
asdfasdf zxcvbnm1 qazwsxedc abcd1234 abc12345 abcdefgh a1b2c3d4 aa123456 iloveyou
iloveyou1 sunshine princess football baseball starwars superman trustno1 whatever
letmein1 welcome1 welcome123 admin123 admin1234 administrator changeme changeme1
computer internet monkey123 dragon123 master123 michael1 jennifer charlie1 shadow12
matkhau matkhau1 matkhau123 matkhau@123 anhyeuem anhyeuem1 emyeuanh 123456aa
vietnam1 vietnam123 hanoi123 saigon123 benhvien benhvien1 bacsi123 pacs1234 pacspacs
pacs@123 orthanc1 radiology dicom123 hospital hospital1 doctor12 nurse123
"""
COMMON_PASSWORDS = frozenset(_COMMON_TEXT.split())


def password_problem(password: str, username: str = "") -> str | None:
    """Why ``password`` is refused, or ``None`` when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"password must have at least {MIN_LENGTH} characters"
    folded = password.casefold()
    if folded in COMMON_PASSWORDS or folded.rstrip("!.@#") in COMMON_PASSWORDS:
        return "this password is among the most common ones; choose another"
    if len(set(folded)) <= 2:
        return "this password repeats one or two characters; choose another"
    if username and folded in (username.casefold(), username.casefold()[::-1]):
        return "the password must not be the user name"
    return None
