"""The server's own English sentences a page can show, said in Korean: what the validation library and Taehwa's
validators answer a form with, the notes the platform writes when it clears an alert, the errors a deployment or a
connector reports. One catalogue for both sides: pages rendered here use `in_language`, the browser gets the same
patterns (`patterns()`, JavaScript regular expressions) for the answers it receives.

Each entry is an anchored English pattern and its Korean with `$1`, `$2` … for the pattern's groups; a group is
itself said in Korean when it is one of the catalogue's sentences (`cannot write outputs: <a sentence>`). A
sentence the catalogue does not know is shown as the server said it.
"""

from __future__ import annotations

import re

from taehwa.web.i18n import MESSAGES

PREFIX = "Value error, "  # how the validation library introduces a validator's own sentence

# English pattern → Korean (groups as $1, $2 …); the first pattern that matches says it
SENTENCES: list[tuple[str, str]] = [
    # the validation library's common sentences
    (r"String should match pattern '(.*)'", "형식이 맞지 않습니다(패턴 $1)"),
    (r"Input should be less than or equal to (.*)", "$1 이하여야 합니다"),
    (r"Input should be greater than or equal to (.*)", "$1 이상이어야 합니다"),
    (r"Input should be greater than (.*)", "$1보다 커야 합니다"),
    (r"Input should be less than (.*)", "$1보다 작아야 합니다"),
    (r"Field required", "필수 입력 항목입니다"),
    (r"Input should be a valid number.*", "숫자여야 합니다"),
    (r"Input should be a valid integer.*", "정수여야 합니다"),
    (r"Input should be a valid string", "문자열이어야 합니다"),
    (r"Input should be a valid boolean.*", "참/거짓 값이어야 합니다"),
    (r"Input should be a valid list", "목록이어야 합니다"),
    (r"Input should be a valid dictionary.*", "이름과 값의 묶음(매핑)이어야 합니다"),
    (r"Input should be (.*) or (.*)", "다음 중 하나여야 합니다: $1, $2"),
    (r"Input should be (.*)", "다음 중 하나여야 합니다: $1"),
    (r"List should have at least (\d+) items? after validation.*", "항목이 $1개 이상 필요합니다"),
    (r"String should have at least (\d+) characters?", "$1자 이상이어야 합니다"),
    (r"String should have at most (\d+) characters?", "$1자 이하여야 합니다"),
    (r"Extra inputs are not permitted", "알 수 없는 항목입니다"),
    (r"Invalid JSON.*", "JSON 형식이 아닙니다"),
    # connectors
    (r"'#' must be a whole level and the last one", "'#'은 토픽의 한 단계 전체이면서 마지막 단계여야 합니다"),
    (r"'\+' must be a whole level", "'+'는 토픽의 한 단계 전체여야 합니다"),
    (
        r"a sparkplug item's topic starts with spBv1\.0/ \(e\.g\. (.*)\)",
        "Sparkplug 항목의 토픽은 spBv1.0/으로 시작합니다(예: $1)",
    ),
    (
        r"the pattern names files in the folder itself: no '/', '\\', '\*\*' or '\.\.'",
        "패턴은 폴더 안의 파일 이름만 지정합니다. '/', '\\', '**', '..'는 쓸 수 없습니다",
    ),
    (
        r"security_policy (\S+) needs certificate and private_key",
        "security_policy $1에는 certificate와 private_key가 필요합니다",
    ),
    (r"connector name '(.*)' appears twice", "커넥터 이름 '$1'이(가) 두 번 나옵니다"),
    (r"protocol must be one of (.*); got (.*)", "protocol은 다음 중 하나여야 합니다: $1 (입력: $2)"),
    (r"connector '(.*)' exists.*", "커넥터 '$1'이(가) 이미 있습니다"),
    (
        r"OPC UA session to (\S+) lost: (.*); retrying in (\S+) s",
        "OPC UA 세션 연결이 끊겼습니다($1): $2. $3초 후 다시 연결합니다",
    ),
    # alert rules, labels, deployments
    (r"a threshold rule needs a value", "임계값 규칙에는 값(value)이 필요합니다"),
    (r"a rate rule needs rate_per_s", "변화율 규칙에는 rate_per_s가 필요합니다"),
    (r"a stale rule needs stale_s", "수신 지연 규칙에는 stale_s가 필요합니다"),
    (
        r"name the scope: asset_type, asset, or tag \(a tag may also name its asset\)",
        "범위를 지정하세요: asset_type, asset 또는 tag(태그에는 자산을 함께 지정할 수 있습니다)",
    ),
    (r"give a tag or a signal, not both", "태그와 신호 중 하나만 지정하세요"),
    (r"name the signal the rule watches on each asset", "규칙이 각 자산에서 감시할 신호를 지정하세요"),
    (r"type '(.*)' has no signal '(.*)' \(it has (.*)\)", "유형 '$1'에는 신호 '$2'이(가) 없습니다(있는 신호: $3)"),
    (r"rule '(.*)' exists; remove it first or replace it", "규칙 '$1'이(가) 이미 있습니다. 먼저 삭제하거나 바꾸세요"),
    (r"no alert rule '(.*)' in tenant '(.*)'", "기업 '$2'에 알림 규칙 '$1'이(가) 없습니다"),
    (r"deployment '(.*)' exists.*", "배포 '$1'이(가) 이미 있습니다"),
    (r"no deployment '(.*)'.*", "배포 '$1'이(가) 없습니다"),
    (r"no model '(.*)'.*", "모델 '$1'이(가) 없습니다"),
    (r"not a time: (.*)", "시각이 아닙니다: $1"),
    (
        r"cannot parse time '(.*)'; use ISO 8601 such as (.*)",
        "시각 '$1'을(를) 읽을 수 없습니다. ISO 8601 형식으로 쓰세요(예: $2)",
    ),
    (r"end must be after start", "종료 시각은 시작 시각보다 뒤여야 합니다"),
    (r"cannot write outputs: (.*)", "출력을 기록할 수 없습니다: $1"),
    # sharing, users, roles, tokens
    (r"a tenant needs no grant to read its own data", "자기 기업의 데이터를 읽는 데에는 공유 승인이 필요 없습니다"),
    (r"name at least one tag \(or a prefix such as '(.*)'\)", "태그를 하나 이상 지정하세요(또는 '$1' 같은 접두어)"),
    (r"a grant lasts between a moment and 10 years \(days\)", "공유 승인 기간은 0일 초과 10년 이하입니다(일)"),
    (r"no grant '(.*)'", "공유 승인 '$1'이(가) 없습니다"),
    (r"unknown user '(.*)'", "알 수 없는 사용자 '$1'"),
    (r"role must be one of (.*)", "역할은 다음 중 하나여야 합니다: $1"),
    (r"a password needs at least (\d+) characters", "비밀번호는 $1자 이상이어야 합니다"),
    (r"unknown scope '(.*)'; use (.*)", "알 수 없는 권한 범위 '$1'. 다음 중에서 고르세요: $2"),
    (
        r"a token cannot have scopes the token that makes it lacks",
        "토큰을 만드는 토큰에 없는 권한 범위는 줄 수 없습니다",
    ),
    (r"expiry must be between a moment and 3650 days", "만료 기간은 0일 초과 3650일 이하여야 합니다"),
    (r"unknown token '(.*)'", "알 수 없는 토큰 '$1'"),
    (r"invalid tag '(.*)': use letters, digits and (.*)", "잘못된 태그 '$1': 영문자, 숫자와 $2만 쓸 수 있습니다"),
    # the city's release gate
    (
        r"fewer than (\d+) companies contribute to (\S+) for (.*); the city sees an aggregate only when at least "
        r"(\d+) do",
        "$2($3)에 기여하는 기업이 $1곳 미만입니다. 도시는 $4곳 이상이 기여할 때만 집계를 봅니다",
    ),
    (
        r"(\S+) for (.*), set against the aggregates already released \((.*)\), would single out fewer than (\d+) "
        r"companies by overlaps and differences, which could reveal a company's figure \(a differencing attack\), "
        r"and no part of it of at least (\d+) companies avoids that; it is released again once at least (\d+) "
        r"companies have joined or left it",
        "$1($2)은(는) 이미 공개된 집계($3)와 겹침·차이로 $4곳 미만의 기업을 가려낼 수 있어 한 기업의 수치가 드러날 수 "
        "있고(차분 공격), 그렇지 않은 $5곳 이상의 일부도 없습니다. $6곳 이상이 참여하거나 빠지면 다시 공개됩니다",
    ),
    (
        r"(\S+) for (.*) would be the exact mean of two companies, which tells each of them the other's figure; the "
        r"city releases it over two only with noise \(its policy's ε\)",
        "$1($2)은(는) 두 기업의 정확한 평균이 되어 서로의 수치를 알려 줍니다. 두 기업에 대해서는 잡음을 넣을 때만"
        "(정책의 ε) 공개합니다",
    ),
    # the alerts page's actions and filters
    (r"alert (\d+) is already acknowledged", "알림 $1은(는) 이미 확인되었습니다"),
    (r"alert (\d+) is already resolved", "알림 $1은(는) 이미 해제되었습니다"),
    (r"alert (\d+) is not shelved", "알림 $1은(는) 보류 중이 아닙니다"),
    (r"no alert (\d+) in tenant '(.*)'", "기업 '$2'에 알림 $1이(가) 없습니다"),
    (r"shelve for more than 0 s and at most 7 days", "보류 기간은 0초 초과 7일 이하입니다"),
    (r"state is one of (.*)", "상태는 다음 중 하나입니다: $1"),
    (r"limit is 1–100000", "개수 제한은 1–100000입니다"),
    # the lab's form: a spec, a sweep's grid, the model, the city's compute quota
    (
        r"a lab spec is a mapping \(name, task, data, model, …\)",
        "랩 명세는 name, task, data, model 등을 담은 매핑입니다",
    ),
    (r"(\S+)\.kind '(.*)' is unknown; known: (.*)", "$1.kind '$2'은(는) 알 수 없는 모델입니다. 있는 모델: $3"),
    (r"(\S+)\.kind '(.*)' does not do task '(.*)'", "$1.kind '$2'은(는) 과제 '$3'을(를) 하지 않습니다"),
    (r"unknown model kind '(.*)'; known: (.*)", "알 수 없는 모델 '$1'. 있는 모델: $2"),
    (
        r"model '(.*)' does not do task '(.*)' \(it does (.*)\)",
        "모델 '$1'은(는) 과제 '$2'을(를) 하지 않습니다(하는 과제: $3)",
    ),
    (
        r"model '(.*)' has no parameter '(.*)'; it takes (.*)",
        "모델 '$1'에는 매개변수 '$2'이(가) 없습니다. 받는 매개변수: $3",
    ),
    (
        r"a grid maps model parameters to lists of values, e\.g\. (.*)",
        "격자는 모델 매개변수마다 값 목록을 줍니다(예: $1)",
    ),
    (r"grid\.(\S+) must be a non-empty list of values", "grid.$1은(는) 비어 있지 않은 값 목록이어야 합니다"),
    (r"the grid has (\d+) combinations; at most (\d+)", "격자의 조합이 $1개입니다. 최대 $2개까지 됩니다"),
    (
        r"tenant '(.*)' has used (\S+) of its (\S+) CPU hours for (\S+) \(the city's quota\); a (\S+) run would "
        r"pass it — ask the city office for more, or wait for next month",
        "기업 '$1'은(는) $4에 도시가 정한 할당 $3 CPU 시간 중 $2시간을 썼습니다. $5 실행은 할당을 넘게 됩니다. "
        "도시 AI 본부에 더 요청하거나 다음 달을 기다리세요",
    ),
    (
        r"tenant '(.*)' has used (\S+) of its (\S+) CPU hours for (\S+) \(the city's quota\); a (\S+) run cannot "
        r"start — ask the city office for more, or wait for next month",
        "기업 '$1'은(는) $4에 도시가 정한 할당 $3 CPU 시간 중 $2시간을 썼습니다. $5 실행을 시작할 수 없습니다. "
        "도시 AI 본부에 더 요청하거나 다음 달을 기다리세요",
    ),
    # the lab's verdicts and notes (label-free anomaly detectors)
    (
        r"label-free: false alarms on (\S+) h of held-out normal running: (\S+) episode\(s\), (\S+)/day \(95 % upper "
        r"bound (\S+)/day\), (\S+) % of the time in alarm, against a target of at most (\S+)/day and (\S+) %",
        "레이블 없이 판단: 검증용으로 남겨 둔 정상 운전 $1시간의 오경보 $2건, 하루 $3건(95 % 상한 하루 $4건), "
        "경보 상태 시간 $5 %. 목표는 하루 $6건 이하, $7 % 이하",
    ),
    (
        r"never-on meets any false-alarm target: without labelled anomalies the detection rate is unknown",
        "항상 꺼짐 검출기는 어떤 오경보 목표도 충족합니다. 레이블된 이상이 없으면 검출률은 알 수 없습니다",
    ),
    (
        r"no labelled anomalies: judged by false alarms on held-out normal running",
        "레이블된 이상 없음: 검증용으로 남겨 둔 정상 운전의 오경보로 판단",
    ),
    (r"no data-blind detectors recorded", "데이터를 보지 않는 비교 검출기 기록 없음"),
    (r"data-blind detectors: (.*)", "데이터를 보지 않는 비교 검출기: $1"),
    (r"(.+?) (\S+)/day and (\S+) % in alarm, (.*)", "$1 하루 $2건·경보 상태 $3 %, $4"),
    (r"(.+?) (\S+)/day and (\S+) % in alarm", "$1 하루 $2건·경보 상태 $3 %"),
    (
        r"(.*) meet\(s\) that target too: (\S+) h of held-out normal running cannot tell a detector from one that "
        r"ignores the data",
        "$1도 그 목표를 충족합니다. 정상 운전 $2시간으로는 데이터를 보지 않는 검출기와 구별할 수 없습니다",
    ),
    (
        r"(\S+) false alarms a day on held-out normal running is over the target of (\S+)",
        "검증용 정상 운전에서 하루 오경보 $1건은 목표 $2건을 넘습니다",
    ),
    (r"always-on", "항상 켜짐"),
    (r"a periodic clock", "주기적 시계"),
    (r"(always-on|a periodic clock) and (always-on|a periodic clock)", "$1, $2"),
    # rights
    (r"a (\S+) may not (\S+) in tenant '(.*)'", "기업 '$3'에서 $1 역할로는 $2 권한이 없습니다"),
    (r"user '(.*)' has no access to tenant '(.*)'", "사용자 '$1'은(는) 기업 '$2'에 접근할 수 없습니다"),
    (r"only a platform admin may (.*)", "플랫폼 관리자만 할 수 있습니다: $1"),
    (r"this token's scopes \((.*)\) do not allow (.*)", "이 토큰의 권한 범위($1)로는 $2 권한이 없습니다"),
    # the plant model and its assets
    (r"no asset type '(.*)'", "자산 유형 '$1'이(가) 없습니다"),
    (r"no asset '(.*)'", "자산 '$1'이(가) 없습니다"),
    (
        r"asset id '(.*)' must be 1–63 letters, digits, '_', '\.' or '-'",
        "자산 ID '$1'은(는) 영문자·숫자·'_'·'.'·'-'로 된 1–63자여야 합니다",
    ),
    (r"asset '(.*)': unknown type '(.*)'", "자산 '$1': 알 수 없는 유형 '$2'"),
    (r"asset '(.*)': parent '(.*)' does not exist", "자산 '$1': 상위 자산 '$2'이(가) 없습니다"),
    (r"asset '(.*)': required attribute '(.*)' of (.*) is missing", "자산 '$1': $3의 필수 속성 '$2'이(가) 없습니다"),
    (r"asset '(.*)': (\S+) has no attribute '(.*)'", "자산 '$1': $2에는 속성 '$3'이(가) 없습니다"),
    (
        r"asset '(.*)': required sensor '(.*)' is not bound to a tag",
        "자산 '$1': 필수 센서 '$2'이(가) 태그에 연결되지 않았습니다",
    ),
    (r"asset '(.*)' is declared twice \(also at (.*)\)", "자산 '$1'이(가) 두 번 선언되었습니다(다른 위치: $2)"),
    (r"asset '(.*)' needs a type", "자산 '$1'에 유형이 필요합니다"),
    (r"asset '(.*)': unknown key '(.*)'; use (.*)", "자산 '$1': 알 수 없는 키 '$2'. 다음 중에서 쓰세요: $3"),
    (
        r"unknown section '(.*)'; use types, assets, relations",
        "알 수 없는 항목 '$1'. types, assets, relations를 쓰세요",
    ),
    (r"unknown relation kind '(.*)'; use (.*)", "알 수 없는 관계 종류 '$1'. 다음 중에서 쓰세요: $2"),
    (r"relation (\S+): no asset '(.*)'", "관계 $1: 자산 '$2'이(가) 없습니다"),
    (r"not valid YAML.*", "YAML 형식이 아닙니다"),
    # what the platform writes when it clears an alert
    (r"the condition cleared at (\S+) \((.*)\)", "조건이 해제되었습니다: 값 $1 ($2)"),
    (
        r"the live data is back within the validation data's range",
        "실시간 데이터가 검증 데이터의 범위 안으로 돌아왔습니다",
    ),
]
# words that stand in the sentences above (roles and actions), said on their own as the interface says them
SENTENCES += [
    (re.escape(key.split("_", 1)[1]), ko) for key, (_en, ko) in MESSAGES.items() if key.startswith(("role_", "scope_"))
]
_COMPILED = [(re.compile(f"^{en}$", re.DOTALL), ko) for en, ko in SENTENCES]
_GROUP = re.compile(r"\$(\d)")


def in_korean(text: str) -> str | None:
    """The sentence in Korean, or None when the catalogue does not know it."""
    text = text.removeprefix(PREFIX)
    for pattern, ko in _COMPILED:
        hit = pattern.match(text)
        if hit:
            parts: tuple[str | None, ...] = hit.groups()
            return _GROUP.sub(lambda g: _part(parts[int(g.group(1)) - 1] or ""), ko)  # noqa: B023 (used at once)
    return None


def _part(text: str) -> str:
    """A pattern's group in the sentence: itself in Korean when the catalogue knows it."""
    return in_korean(text) or text


def in_language(text: object, lang: str) -> str:
    """A sentence of the server as the page shows it: in Korean where the catalogue knows it, else as said."""
    said = "" if text is None else str(text)
    if lang != "ko":
        return said
    return in_korean(said) or said


def patterns() -> list[tuple[str, str]]:
    """The catalogue for the browser: (anchored JavaScript pattern, Korean with $n)."""
    return [(f"^{en}$", ko) for en, ko in SENTENCES]
