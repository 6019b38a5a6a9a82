"""Interface wording in Korean and English, following shared/GLOSSARY.md. Korean is the default for browsers that
prefer it; a `taehwa_lang` cookie (set by the language switch) overrides the browser."""

from __future__ import annotations

LANGUAGES = ("ko", "en")
LANG_COOKIE = "taehwa_lang"

# key → (English, 한국어)
MESSAGES: dict[str, tuple[str, str]] = {
    "product": ("Taehwa", "태화"),
    "tower": ("Control tower", "통합 관제"),
    "plant": ("Digital twin", "디지털 트윈"),
    "trends": ("Trends", "트렌드"),
    "alerts": ("Alerts", "알림"),
    "models": ("Models", "모델"),
    "connectors": ("Connectors", "커넥터"),
    "sign_in": ("Sign in", "로그인"),
    "sign_out": ("Sign out", "로그아웃"),
    "user": ("User", "사용자"),
    "password": ("Password", "비밀번호"),
    "sign_in_failed": ("Sign-in failed", "로그인 실패"),
    "language": ("Language", "언어"),
    "tenant": ("Company", "기업"),
    "tenants": ("Companies", "기업"),
    "sites": ("Sites", "사업장"),
    "assets": ("Assets", "자산"),
    "asset": ("Asset", "자산"),
    "asset_type": ("Asset type", "자산 유형"),
    "tag": ("Tag", "태그"),
    "tags": ("Tags", "태그"),
    "value": ("Value", "값"),
    "quality": ("Quality", "품질"),
    "time": ("Time", "시각"),
    "state": ("State", "상태"),
    "signal": ("Signal", "신호"),
    "attributes": ("Attributes", "속성"),
    "live_values": ("Live values", "실시간 값"),
    "live_state": ("Live state", "실시간 상태"),
    "normal": ("Normal", "정상"),
    "warning": ("Warning", "주의"),
    "alarm": ("Alarm", "경보"),
    "stale": ("Stale", "갱신 지연"),
    "unknown": ("Unknown", "알 수 없음"),
    "good": ("Good", "양호"),
    "uncertain": ("Uncertain", "불확실"),
    "bad": ("Bad", "불량"),
    "health": ("Health", "건전성"),
    "anomaly_score": ("Anomaly score", "이상 점수"),
    "rul": ("Remaining useful life (RUL)", "잔여 유효 수명(RUL)"),
    "data_rate": ("Data rate (points/s)", "수집 속도(포인트/초)"),
    "in_warning": ("Assets in warning", "주의 자산"),
    "in_alarm": ("Assets in alarm", "경보 자산"),
    "active_alerts": ("Active alerts", "활성 알림"),
    "models_in_production": ("Models in production", "운영 중인 모델"),
    "latest_validation": ("Latest validation", "최근 검증"),
    "aggregated_note": ("Figures are aggregated per company; no company's raw data is shown here.",
                        "기업별 집계 수치만 표시하며, 어느 기업의 원시 데이터도 보여주지 않습니다."),
    "acknowledge": ("Acknowledge", "확인"),
    "shelve": ("Shelve", "보류"),
    "resolve": ("Resolve", "해제"),
    "note": ("Note", "메모"),
    "severity": ("Severity", "심각도"),
    "all": ("All", "전체"),
    "open": ("Open", "미해제"),
    "active": ("Active", "활성"),
    "acknowledged": ("Acknowledged", "확인됨"),
    "resolved": ("Resolved", "해제됨"),
    "message": ("Message", "내용"),
    "raised_at": ("Raised", "발생"),
    "count": ("Count", "횟수"),
    "no_alerts": ("No alerts.", "알림이 없습니다."),
    "filter": ("Filter", "필터"),
    "shelve_hours": ("Shelve for (hours)", "보류 시간(시간)"),
    "from": ("From", "시작"),
    "to": ("To", "끝"),
    "show": ("Show", "보기"),
    "export_csv": ("Export CSV", "CSV 내보내기"),
    "zoom_hint": ("Drag across the chart to zoom in, double-click (or Zoom out) to go back; Earlier and Later move "
                  "the view by half its width (also the ← and → keys). The server downsamples each view.",
                  "차트를 드래그하면 확대, 더블클릭(또는 축소)하면 되돌아갑니다. 이전/이후(← → 키)는 화면 폭의 절반씩 "
                  "이동합니다. 서버가 화면마다 다운샘플링합니다."),
    "pick_tags": ("Tags (comma-separated)", "태그(쉼표로 구분)"),
    "pan": ("Move the view", "구간 이동"),
    "earlier": ("Earlier", "이전"),
    "later": ("Later", "이후"),
    "zoom_out": ("Zoom out", "축소"),
    "overlay": ("Alerts and labels in view", "화면 구간의 알림과 레이블"),
    "overlay_hint": ("Alerts (red lines) and labels (shaded spans) of", "알림(빨간 선)과 레이블(음영 구간) 대상 자산:"),
    "label": ("Label", "레이블"),
    "model": ("Model", "모델"),
    "version": ("Version", "버전"),
    "stage": ("Stage", "단계"),
    "production": ("Production", "운영"),
    "candidate": ("Candidate", "후보"),
    "archived": ("Archived", "보관"),
    "promote": ("Promote", "운영 승격"),
    "roll_back": ("Roll back", "롤백"),
    "runs": ("Runs", "실행"),
    "registry": ("Registry", "모델 저장소"),
    "validation": ("Validation", "검증"),
    "report": ("Report", "보고서"),
    "deployments": ("Deployments", "배포"),
    "deployed_models": ("Models deployed here", "배포된 모델"),
    "reason": ("Reason", "사유"),
    "connected": ("Connected", "연결됨"),
    "disconnected": ("Disconnected", "연결 끊김"),
    "starting": ("Starting", "시작 중"),
    "stopped": ("Stopped", "중지됨"),
    "protocol": ("Protocol", "프로토콜"),
    "points_s": ("Points/s", "포인트/초"),
    "backlog": ("Backlog", "대기열"),
    "last_value": ("Last value", "마지막 값"),
    "last_error": ("Last error", "마지막 오류"),
    "name": ("Name", "이름"),
    "none": ("None", "없음"),
    "children": ("Contains", "하위 자산"),
    "open_trend": ("Open trend", "트렌드 보기"),
    "failed": ("Failed", "실패"),
    "done": ("Done", "완료"),
    "skip_to_content": ("Skip to content", "본문으로 건너뛰기"),
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice, else the browser's first preference we speak (Korean for ko-*), else English."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()
        if code.startswith("ko"):
            return "ko"
        if code.startswith("en"):
            return "en"
    return "en"


def translate(key: str, lang: str) -> str:
    """A label in the language; an unknown key is shown as itself (a missing translation is visible, not fatal)."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "ko" else pair[0]
