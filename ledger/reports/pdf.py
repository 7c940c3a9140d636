"""The PDF statement (거래명세서): a StatementDocument laid out on A4 with reportlab, in a Korean
TrueType font embedded (subset) in the file, so it reads the same on any machine.

reportlab registers a font once per process and subsets it per document (~10 ms a statement,
bench/month_end_bench.py); it reads TrueType outlines only, so the font is NanumGothic (Debian's
fonts-nanum), Malgun Gothic on Windows, AppleGothic on macOS, or LEDGER_PDF_FONT. Noto Sans CJK
(.otf/.ttc, CFF outlines) cannot serve. A missing font stops the command with one line naming
what to install."""

from __future__ import annotations

import functools
import io
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import KeepTogether

from ledger.errors import UserInputError
from ledger.reports.labels import words
from ledger.reports.layout import StatementDocument, format_points, format_whole

# (regular, bold) where the usual Korean TrueType fonts are installed.
KNOWN_FONTS = [
    ("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf"),
    ("/usr/share/fonts/nanum/NanumGothic.ttf", "/usr/share/fonts/nanum/NanumGothicBold.ttf"),
    ("~/.local/share/fonts/NanumGothic.ttf", "~/.local/share/fonts/NanumGothicBold.ttf"),
    ("/Library/Fonts/NanumGothic.ttf", "/Library/Fonts/NanumGothicBold.ttf"),
    ("C:/Windows/Fonts/malgun.ttf", "C:/Windows/Fonts/malgunbd.ttf"),
    ("/System/Library/Fonts/Supplemental/AppleGothic.ttf", None),
]
INSTALL_HINT = (
    "PDF statements need a Korean TrueType font: install Debian's fonts-nanum (apt-get install fonts-nanum), "
    "or set LEDGER_PDF_FONT to a .ttf with Hangul such as NanumGothic.ttf"
)


class MissingFontError(UserInputError):
    pass


def find_font(configured: Path | None) -> tuple[Path, Path | None]:
    """(regular, bold or None): LEDGER_PDF_FONT when set, else the first known font present."""
    if configured is not None:
        if not Path(configured).is_file():
            raise MissingFontError(f"LEDGER_PDF_FONT: {configured} is not a file; {INSTALL_HINT}")
        return Path(configured), None
    for regular, bold in KNOWN_FONTS:
        path = Path(regular).expanduser()
        if path.is_file():
            bold_path = Path(bold).expanduser() if bold else None
            return path, bold_path if bold_path and bold_path.is_file() else None
    raise MissingFontError(INSTALL_HINT)


@functools.cache
def register_fonts(regular: Path, bold: Path | None) -> tuple[str, str]:
    """Register the fonts once for the process (reportlab keeps them for every document), under
    names of their own files; returns (regular, bold) names."""

    names = (f"ledger:{regular}", f"ledger:{bold or regular}:bold")
    try:
        fonts = (TTFont(names[0], str(regular)), TTFont(names[1], str(bold or regular)))
    except TTFError as exc:  # CFF outlines (Noto CJK), a broken file
        raise MissingFontError(f"{regular} cannot be used ({str(exc).splitlines()[0][:120]}); {INSTALL_HINT}") from None
    if ord("가") not in fonts[0].face.charToGlyph:
        raise MissingFontError(f"{regular} has no Hangul; {INSTALL_HINT}")
    for font in fonts:
        pdfmetrics.registerFont(font)
    return names


def fonts(configured: Path | None) -> tuple[str, str]:
    """(regular, bold) font names for reportlab; a missing or unusable font is one clear error."""
    return register_fonts(*find_font(configured))


def _numbered_canvas(head: str, foot: str, font: str):
    """A canvas that writes the running head and 'page n / N' once it knows N."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                width, height = self._pagesize
                self.setFont(font, 8)
                self.setFillGray(0.35)
                self.drawCentredString(width / 2, height - 28, head)
                self.drawString(42, 24, foot)
                self.drawRightString(width - 42, 24, f"{self._pageNumber} / {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def statement_pdf(doc: StatementDocument, produced: str, font: Path | None = None) -> bytes:
    """The statement as a PDF: title, title block, lines (points, won, status), daily balances."""


    regular, bold = fonts(font)  # the names reportlab knows them by
    w = words(doc.lang)
    base = ParagraphStyle("base", fontName=regular, fontSize=9, leading=12, alignment=TA_LEFT)
    strong = ParagraphStyle("strong", parent=base, fontName=bold)
    title = ParagraphStyle("title", parent=base, fontName=bold, fontSize=16, leading=22, spaceAfter=4 * mm)
    section = ParagraphStyle("section", parent=base, fontName=bold, fontSize=11, leading=15, spaceBefore=5 * mm,
                             spaceAfter=2 * mm)  # fmt: skip

    def para(text: str, style=base) -> Paragraph:
        return Paragraph(escape(text or ""), style)

    width = A4[0] - 30 * mm
    story = [para(doc.title, title)]
    block = Table([[para(label, strong), para(value)] for label, value in doc.fields],
                  colWidths=[32 * mm, width - 32 * mm])  # fmt: skip
    block.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9AA5B1")),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#E8EEF4")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))  # fmt: skip
    story += [block, Spacer(1, 6 * mm)]

    numbers = [(doc.points_text(r), format_whole(r.won) if r.won is not None else "") for r in doc.rows]
    data = [list(doc.headers)]
    data += [[para(r.label, strong if r.strong else base), points, won, r.status or ""]
             for r, (points, won) in zip(doc.rows, numbers, strict=True)]  # fmt: skip
    lines = Table(data, colWidths=[width - 88 * mm, 32 * mm, 32 * mm, 24 * mm], repeatRows=1)
    styles = [
        ("FONT", (0, 0), (-1, -1), regular, 9),
        ("FONT", (0, 0), (-1, 0), bold, 9),
        ("ALIGN", (1, 0), (2, -1), "RIGHT"),
        ("ALIGN", (3, 0), (3, -1), "CENTER"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF4")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#808080")),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#D0D7DE")),
    ]
    for n, row in enumerate(doc.rows, 1):
        if row.strong:
            styles.append(("FONT", (1, n), (2, n), bold, 9))
    lines.setStyle(TableStyle(styles))
    story.append(lines)

    if doc.daily:
        half = (len(doc.daily) + 1) // 2
        pairs = []
        for n in range(half):
            left = doc.daily[n]
            right = doc.daily[n + half] if n + half < len(doc.daily) else None
            pairs.append([f"{left[0]:%Y-%m-%d}", format_points(left[1], doc.decimals), "",
                          f"{right[0]:%Y-%m-%d}" if right else "", format_points(right[1], doc.decimals) if right else ""])  # fmt: skip
        daily = Table([[w["day"], w["balance"], "", w["day"], w["balance"]], *pairs],
                      colWidths=[28 * mm, 36 * mm, 10 * mm, 28 * mm, 36 * mm], repeatRows=1)  # fmt: skip
        daily.setStyle(TableStyle([
            ("FONT", (0, 0), (-1, -1), regular, 8.5),
            ("FONT", (0, 0), (-1, 0), bold, 8.5),
            ("ALIGN", (1, 0), (1, -1), "RIGHT"), ("ALIGN", (4, 0), (4, -1), "RIGHT"),
            ("LINEBELOW", (0, 0), (1, 0), 0.6, colors.HexColor("#808080")),
            ("LINEBELOW", (3, 0), (4, 0), 0.6, colors.HexColor("#808080")),
        ]))  # fmt: skip
        daily.hAlign = "LEFT"
        story.append(KeepTogether([para(w["daily"], section), daily]))

    out = io.BytesIO()
    template = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=16 * mm,
                                 bottomMargin=16 * mm, title=doc.title, author="ledger",
                                 subject=doc.running_head)  # fmt: skip
    template.build(story, canvasmaker=_numbered_canvas(doc.running_head, produced, regular))
    return out.getvalue()
