"""Writes the course's notebooks, English and Korean, from one source: the code cells are the same in both
languages, only the text differs. Run it after editing a lesson: `python docs/lessons/build.py`.
The tests execute every notebook it writes (tests/test_lessons.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).parent

SETUP = """\
import os
from pathlib import Path

# The lessons keep their own data directory, apart from any running plant (set TAEHWA_DATA_DIR to choose another).
os.environ.setdefault("TAEHWA_DATA_DIR", str(Path("lesson-data").resolve()))

from taehwa.core.settings import default_shared_data, load_settings
from taehwa.server.platform import Platform

shared = default_shared_data()  # ../shared/data beside the checkout: SKAB, C-MAPSS, Tennessee Eastman
platform = Platform(load_settings(), background=False)
print("data directory:", platform.settings.data_dir)"""

# Each lesson: (file stem, [(English text, Korean text, code or None), ...])
LESSONS: list[tuple[str, list[tuple[str, str, str | None]]]] = [
    ("01-data", [
        ("# Lesson 1 - Plant data: the historian and the digital twin\n\n"
         "You will load the demo plant into the digital twin, store a sensor recording in the historian, and ask "
         "the historian for ranges, downsampled trends and interpolated values - what every model later learns "
         "from. Everything runs on this machine; nothing leaves it.",
         "# 1강 - 플랜트 데이터: 히스토리언(시계열 저장소)과 디지털 트윈\n\n"
         "데모 플랜트를 디지털 트윈에 올리고, 센서 기록을 히스토리언에 저장한 뒤, 구간 조회·다운샘플링·보간을 "
         "해 봅니다. 이후 모든 모델이 이 데이터로 학습합니다. 모든 작업은 이 컴퓨터 안에서만 이루어지며 데이터는 "
         "밖으로 나가지 않습니다(소버린).",
         SETUP),
        ("## The digital twin\n\nThe demo plant has a refinery reaction unit (Tennessee Eastman), a pump station "
         "(SKAB) and an engine shop (C-MAPSS), each as site -> area -> line -> equipment with sensor tags.",
         "## 디지털 트윈\n\n데모 플랜트에는 정유 반응 공정(Tennessee Eastman), 펌프 스테이션(SKAB), 엔진 정비 "
         "공장(C-MAPSS)이 있으며, 각각 사업장 → 구역 → 라인 → 설비 → 센서 태그로 구성됩니다.",
         "from taehwa.demo.history import load_demo_plant\n\n"
         "load_demo_plant(platform, shared, \"demo\")\n"
         "pump = platform.twin.get(\"demo\", \"ulsan-water/pump-station/circulation/pump-1\")\n"
         "print(pump[\"type\"])\n"
         "for signal, tag in sorted(pump[\"tags\"].items()):\n"
         "    print(f\"  {signal:22} -> {tag}\")"),
        ("## Ingest a recording\n\nOne run of the SKAB test bed (a CSV, one row per second) goes into the historian "
         "as tags. From a shell the same is `taehwa ingest FILE.csv --tenant demo`; over HTTP it is "
         "`POST /api/v1/demo/points`. A file with a bad row is refused whole, with the row named.",
         "## 기록 수집\n\nSKAB 시험 설비의 실행 기록 하나(초당 한 행의 CSV)를 히스토리언에 태그로 저장합니다. "
         "셸에서는 `taehwa ingest FILE.csv --tenant demo`, HTTP로는 `POST /api/v1/demo/points`와 같습니다. "
         "잘못된 행이 있는 파일은 통째로 거부되며 그 행이 표시됩니다.",
         "import pandas as pd\n\n"
         "run = pd.read_csv(shared / \"skab/data/valve1/1.csv\", sep=\";\", parse_dates=[\"datetime\"])\n"
         "wide = pd.DataFrame({\"time\": run[\"datetime\"].dt.tz_localize(\"UTC\"),\n"
         "                     \"lesson/valve1-1/pressure\": run[\"Pressure\"],\n"
         "                     \"lesson/valve1-1/flow\": run[\"Volume Flow RateRMS\"]})\n"
         "result = platform.historian.write(\"demo\", wide, layout=\"wide\")\n"
         "platform.historian.flush()\n"
         "print(result.points, \"points stored\")\n"
         "assert result.points == 2 * len(run)"),
        ("## Ask the historian\n\nRaw points in a range, a downsampled trend (one bucket a minute), and values "
         "interpolated onto a regular grid - the grid the lab's models learn on.",
         "## 히스토리언 조회\n\n구간의 원시 데이터 포인트, 1분 단위로 다운샘플링한 트렌드, 그리고 일정한 간격으로 "
         "보간한 값(모델 학습에 쓰는 격자)을 조회합니다.",
         "tags = [\"lesson/valve1-1/pressure\", \"lesson/valve1-1/flow\"]\n"
         "start, end = \"2020-03-09T10:34:00Z\", \"2020-03-09T10:55:00Z\"\n"
         "raw = platform.historian.read(\"demo\", tags, start, end).to_pandas()\n"
         "print(len(raw), \"raw points\")\n"
         "trend = platform.historian.downsample(\"demo\", tags, start, end, \"1m\", [\"avg\", \"max\"]).to_pandas()\n"
         "print(trend.head())\n"
         "grid = platform.historian.interpolate(\"demo\", tags, start, end, \"10s\").to_pandas()\n"
         "print(len(grid), \"interpolated rows\")"),
        ("Close the platform so the next lesson (or `make run`) can open the same files.",
         "다음 강의(또는 `make run`)가 같은 파일을 열 수 있도록 플랫폼을 닫습니다.",
         "platform.close()"),
    ]),
    ("02-model", [
        ("# Lesson 2 - A validated model, promoted and deployed\n\n"
         "You will label the pump station's past, train an anomaly detector from a lab spec, validate it "
         "time-ordered against a baseline, promote it through the registry's gate, deploy it, and watch it score "
         "live data and raise an alert.",
         "# 2강 - 검증(실증)하고 운영 승격해 배포한 모델\n\n"
         "펌프 스테이션의 과거 데이터에 레이블을 붙이고, 실험 사양으로 이상 탐지 모델을 학습한 뒤, 기준 모델과 "
         "시간 순서 백테스트로 검증하고, 모델 저장소의 관문을 거쳐 운영 승격하고, 배포해서 실시간 데이터의 점수와 "
         "알림을 확인합니다.",
         SETUP),
        ("## History and labels\n\nEvery SKAB run goes into the historian; its anomaly intervals become labels on "
         "the run's asset (`taehwa lab labels import` does the same from a CSV).",
         "## 이력과 레이블\n\nSKAB의 모든 실행 기록을 히스토리언에 넣고, 이상 구간은 해당 자산의 레이블이 됩니다"
         "(CSV에서는 `taehwa lab labels import`).",
         "from taehwa.demo import label_skab, load_skab\n"
         "from taehwa.demo.history import load_demo_plant\n\n"
         "load_demo_plant(platform, shared, \"demo\")\n"
         "print(load_skab(platform.historian, shared, \"demo\"), \"points\")\n"
         "platform.historian.flush()\n"
         "print(label_skab(platform.labels, shared, \"demo\"), \"labels\")"),
        ("## Train and validate\n\nThe ready spec `pump-station-anomaly` names the tags, the labels, the features, "
         "the model (PCA with T² and Q) and the protocol (fit on the first 400 s, judge the rest). The lab "
         "backtests it and a baseline on the same rows.",
         "## 학습과 검증\n\n준비된 사양 `pump-station-anomaly`에는 태그, 레이블, 특징, 모델(T²·Q 통계의 PCA), "
         "검증 방식(처음 400초로 학습, 나머지로 평가)이 정의되어 있습니다. 실험실이 이 모델과 기준 모델을 같은 "
         "행으로 백테스트합니다.",
         "from pathlib import Path\n\n"
         "from taehwa.lab.spec import load_spec\n\n"
         "run = platform.lab.run(\"demo\", load_spec(Path(\"pump-station-anomaly\")), mode=\"train\", track=False)\n"
         "print(\"F1 model:\", round(run[\"metrics\"][\"f1\"], 3),\n"
         "      \"baseline:\", round(run[\"baseline\"][\"metrics\"][\"f1\"], 3))\n"
         "print(run[\"verdict\"])\n"
         "assert run[\"beats_baseline\"]"),
        ("## The registry's gate\n\nA version may go to production only when its validation beats the baseline "
         "and the version in production. Promotion records who and why.",
         "## 모델 저장소의 관문\n\n검증 결과가 기준 모델과 현재 운영 중인 버전보다 나아야만 운영 승격할 수 "
         "있습니다. 누가, 왜 승격했는지 기록됩니다.",
         "version = run[\"registered\"][\"version\"]\n"
         "ok, reasons = platform.lab.gate(\"demo\", \"pump-anomaly\", version)\n"
         "print(\"gate passed:\", ok, reasons)\n"
         "platform.lab.promote(\"demo\", \"pump-anomaly\", version, \"lesson 2: beats the baseline\")\n"
         "print([(v[\"version\"], v[\"stage\"]) for v in platform.lab.versions(\"demo\", \"pump-anomaly\")])"),
        ("## Deploy on the live pump\n\nThe live pump learns its own normal running (`pump-station-live`), is "
         "deployed on every CentrifugalPump with an alert rule on its score, and then we feed it two minutes of "
         "data: normal running, then a cavitating pump (flow collapses, vibration doubles).",
         "## 실시간 펌프에 배포\n\n실시간 펌프는 자신의 정상 운전 데이터로 학습하고(`pump-station-live`), 점수에 "
         "대한 알림 규칙과 함께 모든 원심 펌프(CentrifugalPump)에 배포됩니다. 그다음 2분간의 데이터를 넣습니다: "
         "정상 운전, 이어서 캐비테이션(유량 급감, 진동 두 배).",
         "import pandas as pd\n\n"
         "from taehwa.demo.history import PUMP_HISTORY_START, deploy_pump_model, load_pump_history\n\n"
         "load_pump_history(platform, \"demo\", shared)\n"
         "platform.historian.flush()\n"
         "deployed = deploy_pump_model(platform, \"demo\")\n"
         "print(\"deployed\", deployed[\"model\"], \"version\", deployed[\"version\"])\n"
         "platform.live.scorer.refresh(force=True)  # a server does this by itself every few seconds\n"
         "platform.live.engine.refresh(force=True)\n\n"
         "signals = [\"vibration_de\", \"vibration_nde\", \"discharge_pressure\", \"flow\"]\n"
         "past = platform.historian.read(\"demo\", [f\"skab/live/{s}\" for s in signals], PUMP_HISTORY_START,\n"
         "                               PUMP_HISTORY_START + pd.Timedelta(seconds=120)).to_pandas()\n"
         "normal = past.pivot(index=\"time\", columns=\"tag\", values=\"value\")\n"
         "t0 = pd.Timestamp(\"2026-11-30T08:00:00Z\")\n"
         "points = []\n"
         "for k, (_, row) in enumerate(normal.iterrows()):\n"
         "    broken = k >= 60\n"
         "    for s in signals:\n"
         "        v = float(row[f\"skab/live/{s}\"])\n"
         "        v = v * 0.3 if broken and s == \"flow\" else v * 2 if broken and s.startswith(\"vibration\") else v\n"
         "        points.append({\"tag\": f\"skab/live/{s}\", \"time\": t0 + pd.Timedelta(seconds=k), \"value\": v})\n"
         "platform.historian.write(\"demo\", points)\n"
         "platform.live.scorer.drain()  # score now (a server scores in the background)\n"
         "platform.live.engine.drain()  # and run the alert rules on the scores"),
        ("## What the model says\n\nThe score is 1.0 at the control limit: under it while the pump runs as in its "
         "history, over it once it cavitates; the twin shows the pump in alarm and the alert waits to be "
         "acknowledged.",
         "## 모델의 판단\n\n점수 1.0이 관리 한계입니다. 펌프가 평소처럼 돌 때는 그 아래, 캐비테이션이 시작되면 그 "
         "위로 올라갑니다. 디지털 트윈에서 펌프는 경보 상태가 되고, 알림은 확인을 기다립니다.",
         "pump = \"ulsan-water/pump-station/circulation/pump-1\"\n"
         "scores = platform.historian.read(\"demo\", [f\"{pump}/anomaly_score\"], t0, t0 + pd.Timedelta(minutes=3))\n"
         "s = scores.to_pandas()[\"value\"].to_numpy()\n"
         "print(\"normal running, highest score:\", round(s[25:55].max(), 2))\n"
         "print(\"cavitating, lowest score:\", round(s[-30:].min(), 2))\n"
         "state = platform.twin.state(\"demo\", pump)[\"signals\"][\"anomaly_score\"]\n"
         "print(\"twin state:\", state[\"limit_state\"])\n"
         "for alert in platform.live.alerts.list(\"demo\", state=\"active\"):\n"
         "    print(alert[\"severity\"], alert[\"asset\"], alert[\"message\"])\n"
         "assert s[25:55].max() < 1.0 < s[-30:].min()\n"
         "assert platform.live.alerts.list(\"demo\", state=\"active\")"),
        ("Close the platform.", "플랫폼을 닫습니다.", "platform.close()"),
    ]),
    ("03-academy", [
        ("# Lesson 3 - A challenge: code to data\n\n"
         "You will take part in the SKAB challenge: read its public training part, write a model, and submit it. "
         "Taehwa trains and scores your code in a sandbox next to the data - no network, only the training data "
         "visible, limited time and memory - and ranks it on the board. The hidden test part decides the final "
         "board when the challenge closes.",
         "# 3강 - 챌린지: 코드를 데이터로 보내기\n\n"
         "SKAB 챌린지에 참가합니다. 공개된 학습 구간을 읽고, 모델을 작성해 제출합니다. 태화는 데이터 옆의 "
         "샌드박스(네트워크 없음, 학습 데이터만 보임, 시간·메모리 제한)에서 코드를 학습·채점하고 리더보드에 "
         "올립니다. 챌린지가 끝나면 비공개 평가 구간이 최종 순위를 정합니다.",
         SETUP),
        ("## The challenge and its data", "## 챌린지와 데이터",
         "import pandas as pd\n\n"
         "platform.academy.install_ready([\"skab-valves\"])\n"
         "challenge = platform.academy.get(\"skab-valves\")\n"
         "print(challenge[\"title\"][\"en\"], \"-\", challenge[\"metric\"], challenge[\"rows\"])\n"
         "train = pd.read_parquet(platform.academy.public_file(\"skab-valves\", \"train\"))\n"
         "print(train.groupby(\"unit\")[\"target\"].mean().round(2).head())"),
        ("## A model\n\nA submission is a Python file with a class `Model`: `fit(X, y)` learns from the training "
         "part, `predict(X)` answers one flag per input row. This one learns each run's normal state from its "
         "first minutes and flags rows far from it.",
         "## 모델 작성\n\n제출물은 `Model` 클래스가 있는 Python 파일입니다. `fit(X, y)`는 학습 구간으로 학습하고, "
         "`predict(X)`는 입력 행마다 하나의 판정을 돌려줍니다. 이 모델은 실행마다 처음 몇 분으로 정상 상태를 익히고, "
         "그로부터 멀리 벗어난 행을 이상으로 표시합니다.",
         "code = '''\n"
         "import numpy as np\n\n"
         "class Model:\n"
         "    def fit(self, X, y):\n"
         "        self.signals = [c for c in X.columns if c not in (\"time\", \"unit\")]\n\n"
         "    def predict(self, X):\n"
         "        out = np.zeros(len(X), dtype=int)\n"
         "        for _, rows in X.groupby(\"unit\").indices.items():\n"
         "            block = X.iloc[rows][self.signals].rolling(20, min_periods=1).mean().to_numpy()\n"
         "            mu, sd = block[:300].mean(axis=0), block[:300].std(axis=0) + 1e-9\n"
         "            z = np.abs((block - mu) / sd).max(axis=1)\n"
         "            out[rows] = (z > 6).astype(int)\n"
         "        return out\n"
         "'''\n"
         "doc = platform.academy.submit(\"skab-valves\", \"python\", code.encode(), label=\"z-score per run\")\n"
         "print(doc[\"verdict\"], \"public F1:\", round(doc[\"public_score\"], 3), \"-\", doc[\"message\"])\n"
         "assert doc[\"verdict\"] == \"scored\""),
        ("## The sandbox\n\nCode that reaches for what it may not - the network, the hidden labels, files outside "
         "its folder - is stopped, with the reason as its verdict.",
         "## 샌드박스\n\n허용되지 않은 것(네트워크, 비공개 레이블, 자기 폴더 밖의 파일)에 접근하려는 코드는 중단되고, "
         "그 이유가 판정으로 남습니다.",
         "sneaky = '''\n"
         "import socket\n\n"
         "class Model:\n"
         "    def fit(self, X, y):\n"
         "        socket.create_connection((\"example.com\", 80))\n\n"
         "    def predict(self, X):\n"
         "        return [0] * len(X)\n"
         "'''\n"
         "doc = platform.academy.submit(\"skab-valves\", \"python\", sneaky.encode(), label=\"sneaky\")\n"
         "print(doc[\"verdict\"], \"-\", doc[\"message\"])\n"
         "assert doc[\"verdict\"] == \"forbidden\""),
        ("## The board\n\nEach participant's best validation score counts while the challenge runs; published "
         "figures and the platform's baseline stand beside. From a shell: `taehwa academy board skab-valves`.",
         "## 리더보드\n\n진행 중에는 참가자별 가장 좋은 검증 점수가 반영되고, 발표 결과와 태화 기준 모델이 함께 "
         "표시됩니다. 셸에서는 `taehwa academy board skab-valves`.",
         "board = platform.academy.board(\"skab-valves\")\n"
         "for e in board[\"entries\"]:\n"
         "    print(e[\"rank\"], e[\"user\"], round(e[\"public_score\"], 3))\n"
         "for b in board[\"baselines\"]:\n"
         "    print(\"-\", b[\"label\"], round(b[\"public_score\"], 3))\n"
         "for p in board[\"published\"]:\n"
         "    print(\"-\", p[\"name\"], \"(published)\", p[\"score\"])\n"
         "platform.close()"),
    ]),
]


def notebook(cells: list[tuple[str, str, str | None]], lang: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for en, ko, code in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(ko if lang == "ko" else en))
        if code:
            nb.cells.append(nbformat.v4.new_code_cell(code))
    for i, cell in enumerate(nb.cells):  # stable ids: rebuilding changes nothing that did not change
        cell["id"] = f"{lang}-{i:02d}"
    return nb


def main() -> int:
    for lang in ("en", "ko"):
        folder = HERE / lang
        folder.mkdir(exist_ok=True)
        for stem, cells in LESSONS:
            nbformat.write(notebook(cells, lang), folder / f"{stem}.ipynb")
    print(f"wrote {2 * len(LESSONS)} notebooks under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
