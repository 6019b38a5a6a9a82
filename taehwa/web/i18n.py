"""Interface wording in Korean and English, following shared/GLOSSARY.md. Korean is the default for browsers that
prefer it; a `taehwa_lang` cookie (set by the language switch) overrides the browser."""

from __future__ import annotations

from typing import Any

from taehwa.core.errors import TaehwaError
from taehwa.live.rules import Rule, parse_rule

LANGUAGES = ("ko", "en")
LANG_COOKIE = "taehwa_lang"

# key → (English, 한국어)
MESSAGES: dict[str, tuple[str, str]] = {
    "product": ("Taehwa", "태화"),
    "tower": ("Control tower", "통합 관제"),
    "city_map": ("City map", "도시 지도"),
    "city_sharing": ("Sharing with the city", "도시와 공유"),
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
    "aggregated_note": (
        "Figures are aggregated per company; no company's raw data is shown here.",
        "기업별 집계 수치만 표시하며, 어느 기업의 원시 데이터도 보여주지 않습니다.",
    ),
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
    "zoom_hint": (
        "Drag across the chart to zoom in, double-click (or Zoom out) to go back; Earlier and Later move "
        "the view by half its width (also the ← and → keys). The server downsamples each view.",
        "차트를 드래그하면 확대, 더블클릭(또는 축소)하면 되돌아갑니다. 이전/이후(← → 키)는 화면 폭의 절반씩 "
        "이동합니다. 서버가 화면마다 다운샘플링합니다.",
    ),
    "pick_tags": ("Tags (comma-separated)", "태그(쉼표로 구분)"),
    "pan": ("Move the view", "구간 이동"),
    "earlier": ("Earlier", "이전"),
    "later": ("Later", "이후"),
    "zoom_out": ("Zoom out", "축소"),
    "overlay": ("Alerts, labels and event frames in view", "화면 구간의 알림, 레이블, 이벤트 프레임"),
    "overlay_hint": (
        "Alerts (red lines), labels (shaded spans) and event frames (blue bands) of",
        "알림(빨간 선), 레이블(음영 구간), 이벤트 프레임(파란 띠) 대상 자산:",
    ),
    "label": ("Label", "레이블"),
    "event_frame": ("Event frame", "이벤트 프레임"),
    "open_now": ("open", "진행 중"),
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
    "academy": ("Academy", "아카데미"),
    "challenges": ("Challenges", "챌린지"),
    "challenge": ("Challenge", "챌린지"),
    "leaderboard": ("Leaderboard", "리더보드"),
    "submissions": ("Submissions", "제출"),
    "my_submissions": ("My submissions", "내 제출"),
    "submit": ("Submit", "제출하기"),
    "task": ("Task", "과제"),
    "metric": ("Metric", "평가 지표"),
    "closes": ("Closes", "마감"),
    "participants": ("Participants", "참가자 수"),
    "participant": ("Participant", "참가자"),
    "ch_open": ("Open", "진행 중"),
    "ch_closed": ("Closed", "종료"),
    "phase_public": ("Public board: scores on the validation part", "공개 리더보드: 검증 구간 점수"),
    "phase_final": ("Final board: scores on the hidden test part", "최종 리더보드: 비공개 평가 구간 점수"),
    "rank": ("Rank", "순위"),
    "public_score": ("Public score", "공개 점수"),
    "final_score": ("Final score", "최종 점수"),
    "entries": ("Entries", "제출 수"),
    "baseline": ("Baseline", "기준 모델"),
    "published": ("Published", "발표 결과"),
    "source": ("Source", "출처"),
    "verdict": ("Verdict", "판정"),
    "kind": ("Kind", "유형"),
    "file": ("File", "파일"),
    "data": ("Data", "데이터"),
    "rows": ("rows", "행"),
    "train_part": ("training", "학습"),
    "validation_part": ("validation", "검증"),
    "test_part": ("hidden test", "비공개 평가"),
    "download_train": ("Training part, with labels (Parquet)", "학습 구간, 레이블 포함 (Parquet)"),
    "download_inputs": ("Inputs to predict (Parquet)", "예측할 입력 (Parquet)"),
    "code_only": (
        "This challenge keeps its inputs next to the data: submit a model spec or a Python model, which "
        "Taehwa trains and scores in a sandbox.",
        "이 챌린지는 입력 데이터를 공개하지 않습니다. 모델 사양 또는 Python 모델을 제출하면 "
        "태화가 샌드박스에서 학습하고 채점합니다.",
    ),
    "kind_predictions": ("Predictions (CSV/Parquet: row, prediction)", "예측 결과 (CSV/Parquet: row, prediction)"),
    "kind_spec": ("Model spec (YAML)", "모델 사양 (YAML)"),
    "kind_python": ("Python model (class Model)", "Python 모델 (class Model)"),
    "scored": ("Scored", "채점 완료"),
    "invalid_output": ("Invalid output", "잘못된 출력"),
    "crashed": ("Crashed", "실행 오류"),
    "timed_out": ("Time limit exceeded", "시간 초과"),
    "out_of_memory": ("Memory limit exceeded", "메모리 초과"),
    "forbidden": ("Stopped by the sandbox", "샌드박스 차단"),
    "queued": ("Queued", "대기 중"),
    "running": ("Running", "실행 중"),
    "anomaly": ("Anomaly detection", "이상 탐지"),
    "fault": ("Fault diagnosis", "고장 진단"),
    "soft_sensor": ("Soft sensor", "소프트 센서"),
    "lower_better": ("lower is better", "낮을수록 좋음"),
    "higher_better": ("higher is better", "높을수록 좋음"),
    "limits": ("Limits", "제한"),
    "daily_limit": ("Submissions per day", "하루 제출 한도"),
    "time_limit": ("Time per run (s)", "실행당 시간(초)"),
    "memory_limit": ("Memory (MB)", "메모리(MB)"),
    "submitted_at": ("Submitted", "제출 시각"),
    "log": ("Log", "로그"),
    "submitting": ("Submitted; running in the sandbox…", "제출했습니다. 샌드박스에서 실행 중…"),
    "rank_note": (
        "Each participant's best public score counts; at the close the board shows the hidden score of "
        "that same entry. Ties go to whoever submitted first.",
        "참가자마다 가장 좋은 공개 점수가 순위에 반영되며, 마감 후에는 같은 제출의 비공개 점수로 순위를 "
        "매깁니다. 동점이면 먼저 제출한 참가자가 앞섭니다.",
    ),
    "skip_to_content": ("Skip to content", "본문으로 건너뛰기"),
    # the design system and the pages of issue 23
    "menu": ("Sections", "메뉴"),
    "times_in_utc": ("All times are UTC", "모든 시각은 UTC 기준입니다"),
    "collapse": ("Fold or unfold", "접기/펼치기"),
    "fleet": ("Fleet", "설비군"),
    "worst_first": ("Worst first", "상태가 나쁜 순"),
    "search_assets": ("Search assets by name, path or type", "자산 이름·경로·유형으로 검색"),
    "collapse_all": ("Collapse all", "모두 접기"),
    "expand_all": ("Expand all", "모두 펼치기"),
    "found": ("found", "건 찾음"),
    "empty_plant": ("This company has no plant model yet", "이 기업에는 아직 설비 모델이 없습니다"),
    "empty_plant_hint": (
        "Load a plant file (sites, areas, lines, equipment and the tags they read) to see the digital twin here:",
        "사업장·구역·라인·설비와 각 설비가 읽는 태그를 적은 설비 파일을 올리면 여기에 디지털 트윈이 표시됩니다:",
    ),
    "empty_demo_hint": (
        "loads a demo plant with data into the demo company",
        "데모 기업에 데이터가 있는 데모 설비를 불러옵니다",
    ),
    "low_alarm": ("low alarm", "하한 경보"),
    "low_warning": ("low warning", "하한 주의"),
    "high_warning": ("high warning", "상한 주의"),
    "high_alarm": ("high alarm", "상한 경보"),
    "model_outputs": ("Model outputs", "모델 출력"),
    "out_anomaly_score": ("Anomaly score", "이상 점수"),
    "out_anomaly": ("Anomaly flag", "이상 여부"),
    "out_fault_class": ("Fault class", "고장 유형"),
    "out_fault_score": ("Fault score", "고장 점수"),
    "out_rul": ("Remaining useful life (RUL)", "잔여 유효 수명(RUL)"),
    "out_estimate": ("Soft-sensor estimate", "소프트 센서 추정값"),
    "out_forecast": ("Forecast", "예측값"),
    "explain_anomaly_score": (
        "How far the latest readings are from the normal running the model learned. Below "
        "the limit is normal; the rule raises an alert above it.",
        "최근 측정값이 모델이 학습한 정상 운전에서 얼마나 벗어났는지를 나타냅니다. 한계값 "
        "아래면 정상이고, 넘으면 규칙이 알림을 발생시킵니다.",
    ),
    "explain_anomaly": (
        "1 when the model judges the current row abnormal, 0 otherwise.",
        "모델이 현재 데이터를 이상으로 판단하면 1, 아니면 0입니다.",
    ),
    "explain_fault_class": (
        "The fault the model recognises in the current readings (0 is normal running).",
        "모델이 현재 측정값에서 인식한 고장 유형입니다(0은 정상 운전).",
    ),
    "explain_fault_score": (
        "How strongly the readings point to a fault; higher is more certain.",
        "측정값이 고장을 가리키는 정도이며, 높을수록 확실합니다.",
    ),
    "explain_rul": (
        "Cycles the model expects before the end of useful life; lower needs attention sooner.",
        "유효 수명이 끝나기까지 모델이 예상하는 남은 사이클 수입니다. 낮을수록 빨리 점검이 필요합니다.",
    ),
    "explain_estimate": (
        "A value the model computes from other signals where no sensor measures it.",
        "센서가 직접 재지 않는 값을 다른 신호로부터 모델이 계산한 값입니다.",
    ),
    "explain_forecast": ("The model's forecast of the signal ahead.", "모델이 예측한 앞으로의 신호 값입니다."),
    "limit": ("limit", "한계값"),
    "of_limit": ("of the limit", "(한계값 대비)"),
    "over_limit": ("over the limit", "한계 초과"),
    "within_limit": ("within the limit", "한계 이내"),
    "rule": ("Rule", "규칙"),
    "no_output_yet": ("No output yet", "아직 출력 없음"),
    "no_data_yet": ("No data yet", "아직 데이터 없음"),
    "no_model_writes": ("No deployed model writes this output yet.", "이 출력을 쓰는 배포 모델이 아직 없습니다."),
    "unit": ("Unit", "단위"),
    "last_hour": ("Last hour", "최근 1시간"),
    "spark_hint": (
        "Sparklines show the last hour of each signal (one-minute averages); dashed lines are its warning "
        "and alarm limits.",
        "스파크라인은 각 신호의 최근 1시간(1분 평균)이며, 점선은 주의·경보 한계값입니다.",
    ),
    "all_alerts_here": ("All alerts of this asset", "이 자산의 모든 알림"),
    "unknown_tags": ("No such tag", "없는 태그"),
    "tag_browser": ("Tag browser", "태그 탐색기"),
    "search_tags": ("Search tags", "태그 검색"),
    "by_asset": ("By asset", "자산별"),
    "by_name": ("By name", "이름별"),
    "latest": ("latest data", "최신 데이터"),
    "zone_note": (
        "Times are entered and shown in UTC (a time typed without a zone is read as UTC). Without a "
        "range the view fits the data: the last day up to the newest point, or less when there is less.",
        "시각은 UTC로 입력하고 표시합니다(시간대 없이 입력한 시각도 UTC로 읽습니다). 구간을 비워 두면 "
        "데이터에 맞춰 최신 데이터까지 최대 하루를 보여줍니다.",
    ),
    "pick_hint": (
        "Pick tags in the tag browser (by asset or by name), or type them above.",
        "태그 탐색기에서 태그를 고르거나(자산별·이름별) 위에 입력하세요.",
    ),
    "select_all": ("Select all active", "활성 알림 모두 선택"),
    "select": ("Select", "선택"),
    "acknowledge_selected": ("Acknowledge selected", "선택한 알림 확인"),
    "what_happened": ("What happened", "발생 내용"),
    "actions": ("Actions", "작업"),
    "no_asset": ("no asset", "자산 없음"),
    "rule_threshold": ("threshold", "임계값"),
    "rule_score": ("model score", "모델 점수"),
    "rule_rate": ("rate of change", "변화율"),
    "rule_stale": ("no data", "데이터 끊김"),
    "rule_drift": ("drift", "드리프트(분포 변화)"),
    "seconds": ("s", "초"),
    "trend_around": ("Trend around the alert", "알림 전후 트렌드"),
    "history": ("History", "이력"),
    "event_frames": ("Event frames", "이벤트 프레임"),
    "act_raised": ("raised", "발생"),
    "act_folded": ("repeated", "반복 발생"),
    "act_acknowledged": ("acknowledged", "확인"),
    "act_resolved": ("resolved", "해제"),
    "act_shelved": ("shelved", "보류"),
    "act_unshelved": ("unshelved", "보류 해제"),
    "target": ("Target", "대상"),
    "target_asset_type": ("asset type", "자산 유형"),
    "target_asset": ("asset", "자산"),
    "target_under": ("under", "하위"),
    "target_assets": ("assets", "자산"),
    "last_row": ("Last row scored", "마지막 채점 행"),
    "cancel": ("Cancel", "취소"),
    "confirm": ("Confirm", "확인"),
    "promote_title": ("Promote to production", "운영 승격"),
    "rollback_title": ("Roll back to the previous version", "이전 버전으로 롤백"),
    "reason_required": (
        "Give a reason; it is kept in the registry's history.",
        "사유를 입력하세요. 모델 저장소 이력에 기록됩니다.",
    ),
    "forecast": ("Forecasting", "예측"),
    "primary_metric": ("primary", "주 지표"),
    "beats_baseline": ("beats the baseline", "기준선보다 우수"),
    "not_beats_baseline": ("does not beat the baseline", "기준선보다 우수하지 않음"),
    "figures": ("Figures", "평가 수치"),
    "lab_says": ("The lab's verdict, as recorded", "실험 기록의 원문 판정"),
    "better_is": ("Better is", "좋은 방향"),
    "this_run": ("This run", "이 실행"),
    "data_judged_on": ("Data it was judged on", "평가에 쓴 데이터"),
    "folds": ("Backtest folds", "백테스트 구간 수"),
    "report_raw": ("The same report as a stand-alone HTML file (English)", "같은 보고서의 단독 HTML 파일(영문)"),
    "data_rate_short": ("Data rate", "수집 속도"),
    "points_per_s": ("points/s", "포인트/초"),
    "rate_note": (
        "Data rate: points stored in the historian per second, over the last 10 s (the same figure on "
        "the control tower and here).",
        "수집 속도: 최근 10초 동안 히스토리언에 저장된 초당 데이터 포인트 수입니다(통합 관제와 같은 수치).",
    ),
    "received_s": ("Received/s", "수신/초"),
    "updated": ("Updated", "갱신"),
    # the working pages (connectors, plant file, operations, administration)
    "operations": ("Operations", "운영 설정"),
    "administration": ("Administration", "관리"),
    "add_connector": ("Add a connector", "커넥터 추가"),
    "connector_note": (
        "Check the definition first: each problem is shown beside its field. Saving stores it; the "
        "server starts it within seconds.",
        "먼저 정의를 검사하세요. 문제마다 해당 입력란 옆에 표시됩니다. 저장하면 서버가 몇 초 안에 시작합니다.",
    ),
    "needs_tenant_admin": (
        "Only the company's administrators may add or remove connectors; your changes will be refused.",
        "커넥터 추가와 삭제는 기업 관리자만 할 수 있습니다. 변경은 거부됩니다.",
    ),
    "needs_write": (
        "Your role may look but not change; changes will be refused.",
        "현재 역할은 조회만 할 수 있어 변경은 거부됩니다.",
    ),
    "refused_rights": ("Not allowed", "권한 없음"),
    "drop_folder": ("Drop folder", "파일 투입 폴더"),
    "tag_prefix": ("Tag prefix", "태그 접두어"),
    "endpoint": ("Endpoint", "엔드포인트"),
    "browse": ("Browse", "탐색"),
    "browsing": ("Browsing the server…", "서버 탐색 중…"),
    "pick_nodes": ("Variables found: tick those to collect", "찾은 변수: 수집할 항목을 선택하세요"),
    "use_picked": ("Use the ticked variables", "선택한 변수 사용"),
    "host": ("Host", "호스트"),
    "port": ("Port", "포트"),
    "unit_id": ("Unit id", "유닛 ID"),
    "poll_ms": ("Poll every (ms)", "폴링 주기(ms)"),
    "folder": ("Folder", "폴더"),
    "file_pattern": ("File names", "파일 이름 패턴"),
    "layout": ("Layout", "형식"),
    "items": ("Items", "항목"),
    "add_row": ("Add a row", "행 추가"),
    "check": ("Check", "검사"),
    "save": ("Save", "저장"),
    "saved": ("Saved", "저장됨"),
    "valid": ("Valid", "유효함"),
    "bound": ("Bound to", "연결한 자산"),
    "bind_failed": ("binding refused for", "신호 연결 거부:"),
    "remove": ("Remove", "삭제"),
    "col_node": ("Node id", "노드 ID"),
    "col_tag": ("Tag", "태그"),
    "col_sampling_ms": ("Sampling (ms)", "샘플링(ms)"),
    "col_bind": ("Asset signal", "자산 신호"),
    "col_topic": ("Topic", "토픽"),
    "col_format": ("Format", "형식"),
    "col_address": ("Register", "레지스터"),
    "col_kind": ("Kind", "종류"),
    "col_type": ("Type", "자료형"),
    "col_scale": ("Scale", "배율"),
    "plant_file": ("Plant file", "플랜트 파일"),
    "edit_plant": ("Edit the plant", "플랜트 편집"),
    "plant_file_note": (
        "The whole plant model as YAML: saved as a whole or not at all; each problem is listed with "
        "its line (select it to go there).",
        "플랜트 모델 전체(YAML)입니다. 전체가 저장되거나 전혀 저장되지 않으며, 문제는 줄 번호와 함께 "
        "표시됩니다(선택하면 해당 줄로 이동).",
    ),
    "upload_file": ("Load a file", "파일 불러오기"),
    "loaded": ("Loaded", "불러옴"),
    "save_plant": ("Save the plant file", "플랜트 파일 저장"),
    "problems": ("Problems", "문제"),
    "line": ("line", "줄"),
    "create_asset": ("Create an asset", "자산 생성"),
    "move_asset": ("Move an asset", "자산 이동"),
    "delete_asset": ("Delete an asset", "자산 삭제"),
    "parent": ("Parent", "상위 자산"),
    "new_parent": ("New parent", "새 상위 자산"),
    "top_level": ("top level (a site)", "최상위(사업장)"),
    "asset_id": ("Id", "ID"),
    "new_id": ("New id (optional)", "새 ID(선택)"),
    "with_children": ("With everything under it", "하위 자산 포함"),
    "create": ("Create", "생성"),
    "move": ("Move", "이동"),
    "delete": ("Delete", "삭제"),
    "compare": ("Compare", "비교"),
    "compare_versions": ("Versions side by side", "버전 나란히 비교"),
    "compare_needs_two": ("Two versions are needed to compare.", "비교하려면 버전이 두 개 필요합니다."),
    "compare_same_model": ("Pick two versions of the same model.", "같은 모델의 두 버전을 고르세요."),
    "better_one": ("Better", "더 나은 쪽"),
    "train_evaluate": ("Train, evaluate or sweep a spec", "명세로 학습·평가·스윕"),
    "train_note": (
        "Evaluate backtests the spec's model against its baseline and keeps the report; train also fits it "
        "on all the data and keeps the model (registered when the spec says so); sweep backtests every "
        "combination of the grid's parameter values and ranks them, best first.",
        "평가는 명세의 모델을 기준 모델과 백테스트하고 보고서만 남깁니다. 학습은 전체 데이터로 모델을 "
        "적합해 보관합니다(명세에 따라 모델 저장소에 등록). 스윕은 격자의 매개변수 값 조합마다 백테스트해 "
        "좋은 순으로 보여 줍니다.",
    ),
    "sweep": ("Sweep", "스윕"),
    "sweeping": ("Sweeping", "스윕 중"),
    "sweep_grid": (
        "Grid for a sweep (JSON: each model parameter and its values)",
        "스윕 격자(JSON: 모델 매개변수와 그 값 목록)",
    ),
    "grid_not_json": ("the grid is not JSON", "격자가 JSON 형식이 아닙니다"),
    "combinations": ("combinations", "조합"),
    "best_combination": ("best", "최적"),
    "start_from": ("Start from", "시작 명세"),
    "empty_spec": ("empty", "빈 명세"),
    "spec_json": ("Spec (JSON)", "명세(JSON)"),
    "spec_not_json": ("the spec is not JSON", "명세가 JSON 형식이 아닙니다"),
    "evaluate": ("Evaluate", "평가"),
    "train": ("Train", "학습"),
    "training": ("Training", "학습 중"),
    "evaluating": ("Evaluating", "평가 중"),
    "progress": ("Progress", "진행"),
    "force_gate": ("Promote past the gate (tenant admins; recorded)", "승격 기준을 건너뛰고 승격(기업 관리자, 기록됨)"),
    "force_note": (
        "The gate's refusal and your reason stay in the model's history and the audit log.",
        "승격 기준의 거부 사유와 입력한 사유가 모델 이력과 감사 로그에 남습니다.",
    ),
    "forced": ("forced", "강제"),
    "action": ("Action", "작업"),
    "by": ("By", "수행자"),
    "act_register": ("registered", "등록"),
    "act_promote": ("promoted", "운영 승격"),
    "act_refused": ("refused by the gate", "승격 기준 미달로 거부"),
    "act_rollback": ("rolled back", "롤백"),
    "pause": ("Pause", "일시 중지"),
    "resume": ("Resume", "재개"),
    "paused": ("Paused", "일시 중지됨"),
    "new_deployment": ("New deployment", "새 배포"),
    "deploy": ("Deploy", "배포"),
    "step": ("Row step", "행 간격"),
    "alert_rules": ("Alert rules", "알림 규칙"),
    "new_rule": ("New alert rule", "새 알림 규칙"),
    "add_rule": ("Add the rule", "규칙 추가"),
    "scope": ("Applies to", "적용 대상"),
    "condition": ("Condition", "조건"),
    "op": ("Comparison", "비교"),
    "kind_threshold": ("threshold", "임계값"),
    "kind_score": ("model score", "모델 점수"),
    "kind_rate": ("rate of change", "변화율"),
    "kind_stale": ("no data", "데이터 없음"),
    "min_duration_s": ("Holds for (s)", "지속 시간(초)"),
    "rate_per_s": ("Largest normal change (/s)", "정상 최대 변화율(/초)"),
    "stale_s": ("No data for (s)", "무수신 시간(초)"),
    "labels": ("Labels", "라벨"),
    "new_label": ("New label", "새 라벨"),
    "add_label": ("Add the label", "라벨 추가"),
    "users_roles": ("Users and roles", "사용자와 역할"),
    "role": ("Role", "역할"),
    "role_tenant_admin": ("company admin", "기업 관리자"),
    "role_engineer": ("engineer", "엔지니어"),
    "role_viewer": ("viewer", "조회자"),
    "role_researcher": ("researcher", "연구자"),
    "role_platform_admin": ("platform admin", "플랫폼 관리자"),
    "give_role": ("Give a role", "역할 부여"),
    "remove_role": ("Remove the role", "역할 회수"),
    "api_tokens": ("Your API tokens", "내 API 토큰"),
    "tokens_note": (
        "A token is shown once, when it is made; keep it like a password.",
        "토큰은 만들 때 한 번만 보입니다. 비밀번호처럼 보관하세요.",
    ),
    "scopes": ("Scopes", "권한 범위"),
    "scope_read": ("read", "읽기"),
    "scope_write": ("write", "쓰기"),
    "scope_admin": ("admin", "관리"),
    "created": ("Created", "생성"),
    "expires": ("Expires", "만료"),
    "expires_in_days": ("Expires in (days)", "만료까지(일)"),
    "make_token": ("Make a token", "토큰 만들기"),
    "token_once": ("Your new token (shown only now)", "새 토큰(지금만 표시됨)"),
    "revoke": ("Revoke", "폐기"),
    "revoked": ("Revoked", "폐기됨"),
    "ended": ("Ended", "종료"),
    "sharing_grants": ("Sharing grants", "데이터 공유 승인"),
    "grants_given": ("Given", "제공한 승인"),
    "grants_received": ("Received", "받은 승인"),
    "grantee": ("Granted to", "공유 대상"),
    "owner": ("From", "제공 기업"),
    "new_grant": ("New sharing grant", "새 데이터 공유 승인"),
    "grant": ("Grant", "승인"),
    "lasts_days": ("Lasts (days)", "유효 기간(일)"),
    "pseudonymise": ("Pseudonymise", "가명 처리"),
    "pseudonymised": ("pseudonymised", "가명 처리됨"),
    "purpose": ("Purpose", "목적"),
    "audit_log": ("Audit log", "감사 로그"),
    "verify_chain": ("Verify the chain", "해시 체인 검증"),
    "audit_intact": ("Intact", "무결"),
    "audit_broken": ("Broken", "손상됨"),
    "audit_entries": ("entries", "건"),
    # data-driven sentences: an alert's message key (taehwa.live) with its parameters, said in the page's language
    "say_rule.threshold": ("{what} {op} {value}", "{what} {value} {op_word}"),
    "say_rule.threshold_for": ("{what} {op} {value} for {seconds} s", "{what} {seconds}초 동안 {value} {op_word}"),
    "say_rule.rate": ("{what} changing faster than {rate}/s", "{what} 변화가 초당 {rate}보다 빠름"),
    "say_rule.stale": ("{what} has sent nothing for {seconds} s", "{what} {seconds}초 동안 수신 없음"),
    "say_rule.custom": ("{text}", "{text}"),
    "say_rule.score_alarm": ("{what}: the model's calibrated alarm", "{what}: 모델의 보정된 경보"),
    "say_drift": (
        "{deployment}: live data drifted from the validation data ({input} PSI {psi})",
        "{deployment}: 실시간 데이터가 검증 데이터의 분포에서 벗어남(드리프트, {input} PSI {psi})",
    ),
    "op_word_>": ("above", "초과"),
    "op_word_<": ("below", "미만"),
    "alerts_per_day": ("Alerts raised per day", "일별 발생 알림"),
    "points_per_day": ("Points stored per day (by their time)", "일별 저장 포인트(측정 시각 기준)"),
    "cluster_over_days": ("The cluster over the last 14 days", "최근 14일 클러스터 추이"),
    "total": ("total", "합계"),
    "m_tp": ("true positives (tp)", "정탐(tp)"),
    "m_fp": ("false positives (fp)", "오탐(fp)"),
    "m_fn": ("missed (fn)", "미탐(fn)"),
    "m_tn": ("true negatives (tn)", "정상 판정(tn)"),
    "m_precision": ("precision", "정밀도"),
    "m_recall": ("recall", "재현율"),
    "m_f1": ("F1", "F1"),
    "m_far_pct": ("false alarm rate (%)", "오경보율(%)"),
    "m_mar_pct": ("missed alarm rate (%)", "미경보율(%)"),
    "m_events": ("anomaly events", "이상 사건 수"),
    "m_events_found": ("events found", "찾은 사건 수"),
    "m_event_recall": ("event recall", "사건 재현율"),
    "m_event_precision": ("event precision", "사건 정밀도"),
    "m_event_f1": ("event F1", "사건 F1"),
    "m_false_alarms": ("false alarms", "오경보 횟수"),
    "m_false_alarms_per_week": ("false alarms per week", "주당 오경보"),
    "m_false_alarms_per_day": ("false alarms per day", "일일 오경보"),
    "m_detection_delay_s": ("detection delay (s)", "탐지 지연(초)"),
    "m_nab_standard": ("NAB score (standard)", "NAB 점수(표준)"),
    "m_rmse": ("RMSE", "RMSE"),
    "m_mae": ("MAE", "MAE"),
    "m_macro_f1": ("macro F1", "매크로 F1"),
    "m_accuracy": ("accuracy", "정확도"),
    "m_balanced_accuracy": ("balanced accuracy", "균형 정확도"),
    "m_phm08_score": ("PHM08 score", "PHM08 점수"),
    "m_flagged_share": ("share of rows flagged", "이상 판정 비율"),
    "m_alarm_episodes": ("alarm episodes", "경보 발생 구간 수"),
    "m_normal_hours": ("hours of normal running judged", "평가한 정상 운전 시간"),
    "m_time_in_alarm_pct": ("time in alarm (%)", "경보 시간 비율(%)"),
    "m_gate": ("gate criterion", "승격 기준"),
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


def _figure(v: object) -> str:
    """A parameter as the sentence shows it: numbers in their shortest form (as Python's :g), the rest as text."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int | float):
        return f"{v:g}"
    return str(v)


def message_of(alert: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """An alert's message key and parameters: from its chain (taehwa.live writes them), else rebuilt from the rule
    in its chain (alerts raised before keys were kept); None when neither says (the stored sentence stands)."""
    chain = alert.get("chain") or {}
    given = chain.get("message")
    if isinstance(given, dict) and isinstance(given.get("key"), str):
        params = dict(given.get("params") or {})
        if given["key"] == "drift" and alert.get("value") is not None:
            params["psi"] = alert["value"]  # the figure now, not the one it was raised at
        return given["key"], params
    rule = chain.get("rule")
    if not isinstance(rule, dict) or not rule:
        return None
    try:  # the rule's own key (taehwa.live.rules), so the two cannot say it differently
        got = Rule(str(alert.get("tenant") or ""), parse_rule(rule)).message_key()
    except TaehwaError:
        return None
    return str(got["key"]), dict(got["params"])


def say(alert: dict[str, Any], lang: str) -> str:
    """An alert's message in the language: its key's sentence with its parameters, else the stored sentence."""
    found = message_of(alert)
    if found is None or ("say_" + found[0]) not in MESSAGES:
        return str(alert.get("message") or "")
    key, params = found
    shown = {k: _figure(v) for k, v in params.items()}
    shown["op_word"] = translate("op_word_" + str(params.get("op", ">")), lang)
    try:
        return translate("say_" + key, lang).format(**shown)
    except (KeyError, IndexError, ValueError):
        return str(alert.get("message") or "")
