"""Looking at report files as a person gets them: LibreOffice prints the XLSX to PDF, poppler
turns PDFs into PNG pages and text; and checks of what an XLSX shows: every cell's content fits
its column (text may run on into empty cells beside it, as spreadsheets show it; a number must
fit its own column), print setup, and the charts' axes and lines."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.reports.layout import display_width
from ledger.reports.sheets import wrapped_lines

TOOLS = {"libreoffice": "libreoffice-calc-nogui", "pdftoppm": "poppler-utils", "pdftotext": "poppler-utils"}
DEBIAN_PACKAGES = ["libreoffice-calc-nogui", "poppler-utils", "fonts-nanum"]
_installed: list[bool] = []


def _missing() -> list[str]:
    from ledger.reports.pdf import MissingFontError, find_font

    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    try:
        find_font(None)
    except MissingFontError:
        missing.append("a Korean TrueType font (fonts-nanum)")
    return missing


def require_tools() -> None:
    """LibreOffice, poppler and NanumGothic from Debian, installed when absent (as .ci/run
    does); the test is skipped, saying why, only when they cannot be installed."""
    missing = _missing()
    if missing and not _installed and shutil.which("apt-get") and os.geteuid() == 0:
        _installed.append(True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES],
                       capture_output=True, env=env, timeout=900)  # fmt: skip
        missing = _missing()
    if missing:
        pytest.skip(f"cannot render: {', '.join(missing)} missing and could not be installed "
                    f"(Debian: apt-get install {' '.join(DEBIAN_PACKAGES)})")  # fmt: skip


def print_to_pdf(paths: list[Path], folder: Path) -> list[Path]:
    """Print spreadsheets to PDF with LibreOffice, all in one start (it is slow to start)."""
    profile = folder / "libreoffice-profile"
    subprocess.run(["libreoffice", "--headless", "--norestore", f"-env:UserInstallation=file://{profile}",
                    "--convert-to", "pdf", "--outdir", str(folder), *map(str, paths)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return [folder / f"{Path(p).stem}.pdf" for p in paths]


def pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def pdf_text(pdf: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return subprocess.run(["pdftotext", "-layout", *pages, str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def to_png(pdf: Path, resolution: int = 50) -> list[Path]:
    prefix = pdf.with_suffix("")
    subprocess.run(["pdftoppm", "-r", str(resolution), "-png", str(pdf), str(prefix)], check=True, timeout=120)
    return sorted(pdf.parent.glob(f"{prefix.name}-*.png"))


def shown(cell) -> str:
    """The text a spreadsheet shows for a cell, for the number formats the reports use."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        decimals = len(cell.number_format.split(".", 1)[1]) if "." in cell.number_format else 0
        return f"{Decimal(str(value)):,.{decimals}f}"
    return str(value)


def cells_that_do_not_fit(path: Path) -> list[str]:
    """Cells whose content is wider than what a spreadsheet gives it."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    problems = []
    for sheet in load_workbook(path).worksheets:
        widths = {}
        for row in sheet.iter_rows():
            for n, cell in enumerate(row):
                text = shown(cell)
                if not text:
                    continue
                letter = get_column_letter(cell.column)
                width = widths.setdefault(letter, sheet.column_dimensions[letter].width or 8.43)
                scale = (cell.font.size or 11) / 11 * (1.05 if cell.font.bold else 1)
                if cell.alignment.wrap_text:  # wrapped: the row must be tall enough for its lines
                    height = sheet.row_dimensions[cell.row].height or 15
                    needed, room = wrapped_lines(text, width / scale) * 15 * scale, height + 1
                elif cell.data_type == "s":  # text runs on into empty cells beside it
                    needed, room = display_width(text) * scale, width
                    for right in row[n + 1 :]:
                        if right.value not in (None, ""):
                            break
                        room += sheet.column_dimensions[get_column_letter(right.column)].width or 8.43
                else:
                    needed, room = display_width(text) * scale, width
                if needed > room:
                    problems.append(f"{sheet.title}!{cell.coordinate} {text!r}: needs {needed:.0f}, has {room:.0f}")
    return problems


def sheet_xml(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist() if name.endswith(".xml")}


def print_settings_problems(path: Path) -> list[str]:
    """Every sheet prints fit to one page wide (as many pages down as it takes)."""
    problems = []
    for name, xml in sheet_xml(path).items():
        if not name.startswith("xl/worksheets/sheet"):
            continue
        setup = re.search(r"<pageSetup [^>]*>", xml)
        if 'fitToPage="1"' not in xml or not setup or 'fitToWidth="1"' not in setup.group(0) \
                or 'fitToHeight="0"' not in setup.group(0):  # fmt: skip
            problems.append(f"{name}: not fit to one page wide")
        if "&amp;P" not in xml:
            problems.append(f"{name}: no page numbers")
    return problems


def chart_problems(path: Path) -> tuple[int, list[str]]:
    """(charts, problems): a line chart is not smoothed; every axis has a title; a bar chart
    is horizontal and names every category."""
    charts, problems = 0, []
    for name, xml in sheet_xml(path).items():
        if not name.startswith("xl/charts/chart"):
            continue
        charts += 1
        for axis in re.findall(r"<c:(?:catAx|valAx|dateAx)>.*?</c:(?:catAx|valAx|dateAx)>", xml, re.S):
            if "<c:title>" not in axis:
                problems.append(f"{name}: an axis has no title")
        if "<c:lineChart>" in xml:
            smooth = re.findall(r'<c:smooth val="(\d)"', xml)
            if not smooth or any(v != "0" for v in smooth):
                problems.append(f"{name}: the line is smoothed")
        if "<c:barChart>" in xml:
            if '<c:barDir val="bar"' not in xml:
                problems.append(f"{name}: the bars are not horizontal")
            if '<c:tickLblSkip val="1"' not in xml:
                problems.append(f"{name}: some category labels may be skipped")
    return charts, problems


def charts_outside_the_print_area(path: Path) -> list[str]:
    """Charts that would be cut when printed: each must start in the print area's first
    column, be no wider than its columns and end above its last row."""
    from openpyxl.utils import column_index_from_string

    xml = sheet_xml(path)
    with zipfile.ZipFile(path) as archive:
        rels = {n: archive.read(n).decode() for n in archive.namelist() if n.endswith(".rels")}
    areas = dict(re.findall(r'<definedName name="_xlnm.Print_Area" localSheetId="(\d+)">([^<]+)<', xml["xl/workbook.xml"]))
    problems = []
    for n, name in enumerate(sorted((k for k in xml if re.match(r"xl/worksheets/sheet\d+\.xml$", k)),
                                    key=lambda k: int(re.search(r"(\d+)\.xml", k).group(1)))):  # fmt: skip
        rel = rels.get(name.replace("worksheets/", "worksheets/_rels/") + ".rels", "")
        drawing = re.search(r'Target="/?(?:xl/)?(?:\.\./)?(drawings/drawing\d+\.xml)"', rel)
        if not drawing:
            continue
        first_col, last_col, last_row = re.search(r"\$([A-Z]+)\$\d+:\$([A-Z]+)\$(\d+)", areas[str(n)]).groups()
        widths = {int(m): float(w) for w, m in re.findall(r'<col width="([\d.]+)"[^>]* min="(\d+)"', xml[name])}
        columns = range(column_index_from_string(first_col), column_index_from_string(last_col) + 1)
        room_emu = sum((widths.get(c, 8.43) * 7 + 5) * 2.54 / 96 for c in columns) * 360_000
        anchors = re.findall(r"<(?:xdr:)?from><(?:xdr:)?col>(\d+)</(?:xdr:)?col>.*?<(?:xdr:)?row>(\d+)</(?:xdr:)?row>"
                             r'.*?<(?:xdr:)?ext cx="(\d+)" cy="(\d+)"', xml[f"xl/{drawing.group(1)}"], re.S)  # fmt: skip
        if not anchors:
            problems.append(f"{name}: its drawing has no chart anchor this check can read")
        for col, row, cx, cy in anchors:
            end_row = int(row) + int(cy) / (0.53 * 360_000)
            if int(col) + 1 != columns[0] or int(cx) > room_emu or end_row > int(last_row):
                problems.append(f"{name}: a chart at column {int(col) + 1}, row {int(row) + 1} leaves the print area")
    return problems
