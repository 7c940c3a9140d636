"""XLSX laid out for people (openpyxl, write-only so memory stays flat): column widths from
the content (Korean characters count double), wrapped bold headers, one number format per
column, frozen header rows, and print setup (fit to one page wide, repeated title rows, page
numbers and the member and month in the page header). `statement_sheet` lays out a
StatementDocument with its two charts: the same sheet in `ledger report statement --format
xlsx` and in the month workbook."""

from __future__ import annotations

import math
from collections.abc import Iterable

from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.worksheet.pagebreak import Break

from ledger.reports.export import DATE_FORMAT, clean_text
from ledger.reports.labels import words
from ledger.reports.layout import (
    COUNT_FORMAT,
    WON_FORMAT,
    StatementDocument,
    display_width,
    format_points,
    format_whole,
    point_format,
)

PADDING = 2  # characters of air beside the widest content
MAX_WIDTH = 60  # a column never grows past this; longer text wraps
TITLE_SCALE = 1.4  # a 14-point bold title takes this many default-font characters per character
BOLD_SCALE = 1.1  # bold text is wider
ROW_CM = 0.53  # a default row (15 points)


def width_of(texts: Iterable[str], scale: float = 1.0) -> float:
    widest = max((display_width(t) for t in texts if t), default=0)
    return min(MAX_WIDTH, math.ceil(widest * scale) + PADDING)


def header_width(text: str) -> int:
    """A wrapped header needs room for its longest word only."""
    return math.ceil(max((display_width(word) for word in text.split()), default=0) * BOLD_SCALE) + PADDING


def wrapped_lines(text: str, width: float) -> int:
    """The lines a text wrapped at word boundaries takes in a column `width` characters wide."""
    room = max(1.0, width - PADDING)
    lines, used = 1, 0
    for word in (text or "").split():
        size = display_width(word)
        if size > room:  # a word wider than the column breaks between its characters
            lines += (1 if used else 0) + math.ceil(size / room) - 1
            used = size % room or room
        elif used and used + 1 + size > room:
            lines, used = lines + 1, size
        else:
            used += size + (1 if used else 0)
    return lines


def row_height(texts_and_widths: Iterable[tuple[str, float]], scale: float = 1.0) -> float | None:
    """A row's height in points for its wrapped cells (None: one line, the default)."""
    lines = max((wrapped_lines(t, w / scale) for t, w in texts_and_widths), default=1)
    return None if lines <= 1 else 15.0 * lines + 2


def needs_wrap(text: str, width: float) -> bool:
    return display_width(text or "") + PADDING > width


def prepare(sheet, *, freeze: str | None) -> None:
    """What a write-only sheet writes before its first row: fit-to-page printing, frozen panes."""
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    if freeze:
        sheet.freeze_panes = freeze


def column_cm(width: float) -> float:
    """A column's printed width: openpyxl's unit is one digit of the default font (7 px) plus 5 px."""
    return (width * 7 + 5) * 2.54 / 96


class Style:
    """Write-only cells with the styles the report files use."""

    def __init__(self) -> None:

        self._cell = WriteOnlyCell
        self.bold = Font(bold=True)
        self.title_font = Font(bold=True, size=14)
        self.wrap = Alignment(wrap_text=True, vertical="center")
        self.wrap_top = Alignment(wrap_text=True, vertical="top")
        self.fill = PatternFill("solid", fgColor="E8EEF4")
        self.rule = Border(bottom=Side(style="thin", color="808080"))
        light = Side(style="thin", color="C0C8D0")
        self.grid = Border(left=light, right=light, top=light, bottom=Side(style="thin", color="808080"))
        self.centre = Alignment(horizontal="center")
        # Headers sit where their column's values sit: numbers right, statuses centred.
        self.header_alignments = {
            align: Alignment(horizontal=align, wrap_text=True, vertical="center") for align in ("left", "right", "center")
        }
        self.top_rule = Border(top=Side(style="thin", color="808080"))

    def text(self, sheet, value: str | None, *, bold: bool = False, wrap: bool = False):
        cell = self._cell(sheet, clean_text(value or ""))
        cell.data_type = "s"  # text, whatever it starts with: never a formula
        if bold:
            cell.font = self.bold
        if wrap:
            cell.alignment = self.wrap_top
        return cell

    def title(self, sheet, value: str):
        cell = self.text(sheet, value)
        cell.font = self.title_font
        return cell

    def header(self, sheet, value: str, align: str = "left"):
        cell = self.text(sheet, value, bold=True)
        cell.alignment = self.header_alignments[align]
        cell.fill, cell.border = self.fill, self.grid
        return cell

    def centred(self, sheet, value: str | None):
        cell = self.text(sheet, value)
        cell.alignment = self.centre
        return cell

    def number(self, sheet, value, number_format: str, *, bold: bool = False, total: bool = False):
        cell = self._cell(sheet, value)
        cell.number_format = number_format
        if bold or total:
            cell.font = self.bold
        if total:
            cell.border = self.top_rule
        return cell

    def date(self, sheet, value):
        cell = self._cell(sheet, value)
        cell.number_format = DATE_FORMAT
        return cell


def print_setup(sheet, *, landscape: bool, title_rows: str, head: str, foot: str, area: str) -> None:
    """A4, fit to one page wide (as many pages down as it takes), the title rows on every
    page, the member and month in the header, page numbers in the footer."""
    sheet.page_setup.paperSize = "9"  # A4
    sheet.page_setup.orientation = "landscape" if landscape else "portrait"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0  # as many pages down as it takes (fitToPage is set by prepare)
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.5
    sheet.page_margins.top = sheet.page_margins.bottom = 0.75
    sheet.print_title_rows = title_rows
    sheet.print_area = area
    sheet.oddHeader.center.text = clean_text(head).replace("&", "&&")
    sheet.oddHeader.center.size = 9
    sheet.oddFooter.left.text = clean_text(foot).replace("&", "&&")
    sheet.oddFooter.left.size = 8
    sheet.oddFooter.right.text = "&P / &N"
    sheet.oddFooter.right.size = 8


def statement_sheet(book, doc: StatementDocument, title: str, produced: str, style: Style | None = None) -> int:
    """Write `doc` on a new sheet of the write-only `book`: title block, lines, two charts
    (daily balance, usage by service) and the daily balances. Returns the charts added."""

    style = style or Style()
    w = words(doc.lang)
    sheet = book.create_sheet(title)
    points_format = point_format(doc.decimals)
    field_lines = [f"{label}: {value}" for label, value in doc.fields]
    daily_texts = [format_points(b, doc.decimals) for _, b in doc.daily]
    widths = [
        max(width_of([doc.title], TITLE_SCALE), width_of(field_lines), width_of(r.label for r in doc.rows),
            header_width(doc.headers[0]), width_of([w["daily"], "0000-00-00"]), 24),
        max(width_of([doc.points_text(r) for r in doc.rows] + daily_texts), header_width(doc.headers[1]),
            header_width(w["balance"]), 12),
        max(width_of(format_whole(r.won) for r in doc.rows), header_width(doc.headers[2]), 12),
        max(width_of(r.status or "" for r in doc.rows), header_width(doc.headers[3]), 8),
    ]  # fmt: skip
    for letter, width in zip("ABCD", widths, strict=True):
        sheet.column_dimensions[letter].width = width
    header_row = 2 + len(field_lines) + 1
    prepare(sheet, freeze=f"A{header_row + 1}")

    rows = 0

    def append(cells: list) -> int:
        nonlocal rows
        sheet.append(cells)
        rows += 1
        return rows

    append([style.title(sheet, doc.title)])
    for line in field_lines:
        if (height := row_height([(line, widths[0])])) is not None:
            sheet.row_dimensions[rows + 1].height = height
        append([style.text(sheet, line, wrap=height is not None)])
    append([])
    if (height := row_height(zip(doc.headers, widths, strict=True), BOLD_SCALE)) is not None:
        sheet.row_dimensions[header_row].height = height
    append([style.header(sheet, h, align) for h, align in zip(doc.headers, ("left", "right", "right", "center"),
                                                                 strict=True)])  # fmt: skip
    usage_rows = []
    for r in doc.rows:
        points = None if r.points is None else style.number(sheet, r.points, COUNT_FORMAT if r.count else points_format,
                                                             bold=r.strong)  # fmt: skip
        won = None if r.won is None else style.number(sheet, r.won, WON_FORMAT, bold=r.strong)
        at = append([style.text(sheet, r.label, bold=r.strong), points, won, style.centred(sheet, r.status or "")])
        if r.key.startswith("usage:"):
            usage_rows.append(at)
    last_line = rows

    # The charts below the lines, as wide as the four columns: inside the printed page.
    chart_cm = sum(column_cm(width) for width in widths) - 0.3
    charts = []
    line = LineChart()
    line.title = w["daily"]
    line.y_axis.title, line.x_axis.title = w["balance"], w["day"]
    line.y_axis.number_format = point_format(0)
    line.x_axis.number_format = "d"
    line.legend = None
    line.width, line.height = chart_cm, 7.5
    charts.append(line)
    bar = None
    if usage_rows:
        bar = BarChart()
        bar.type = "bar"  # horizontal: the service names read along the axis
        bar.title = w["usage"]
        bar.x_axis.title, bar.y_axis.title = w["service"], w["points"]
        bar.x_axis.scaling.orientation = "maxMin"  # the first service on top, as in the lines above
        bar.x_axis.tickLblSkip = 1  # every service named
        bar.y_axis.number_format = point_format(0)
        bar.y_axis.crosses = "max"  # with the categories reversed, keeps the points axis at the bottom
        bar.legend = None
        bar.width, bar.height = chart_cm, max(6.0, 2.5 + 0.9 * len(usage_rows))
        bar.add_data(Reference(sheet, min_col=2, min_row=usage_rows[0], max_row=usage_rows[-1]), titles_from_data=False)
        bar.set_categories(Reference(sheet, min_col=1, min_row=usage_rows[0], max_row=usage_rows[-1]))
        charts.append(bar)
    for chart in charts:
        chart.x_axis.delete = chart.y_axis.delete = False  # openpyxl 3.1 hides axes unless told

    anchors = []
    sheet.row_breaks.append(Break(id=rows))  # the charts start a page: never cut by a page break
    append([])
    for chart in charts:
        anchors.append(rows + 1)
        for _ in range(math.ceil(chart.height / ROW_CM) + 1):
            append([])

    sheet.row_breaks.append(Break(id=rows))
    if (height := row_height([(w["daily"], widths[0]), (w["balance"], widths[1])], BOLD_SCALE)) is not None:
        sheet.row_dimensions[rows + 1].height = height
    section = append([style.header(sheet, w["daily"]), style.header(sheet, w["balance"], "right")])
    for day, balance in doc.daily:
        append([style.date(sheet, day), style.number(sheet, balance, points_format)])
    if doc.daily:
        line.add_data(Reference(sheet, min_col=2, min_row=section, max_row=section + len(doc.daily)),
                      titles_from_data=True)  # fmt: skip
        line.set_categories(Reference(sheet, min_col=1, min_row=section + 1, max_row=section + len(doc.daily)))
        series = line.series[0]
        series.smooth = False  # straight segments: a smoothed line dips below the real balances
        series.marker.symbol = "none"
    for chart, anchor in zip(charts, anchors, strict=True):
        if chart is line and not doc.daily:
            continue
        sheet.add_chart(chart, f"A{anchor}")
    print_setup(sheet, landscape=False, title_rows="1:1", head=doc.running_head, foot=produced,
                area=f"A1:D{max(rows, last_line)}")  # fmt: skip
    return sum(1 for chart in charts if chart is not line or doc.daily)
