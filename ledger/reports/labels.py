"""Column headers in Korean (--lang ko). Service names come from the item_codes table
(ledger.history.codes.load_service_names)."""

from __future__ import annotations

KOREAN = {
    "corp_num": "사업자번호", "member_name": "상호", "name": "상호", "month": "월", "day": "일자",
    "item_code": "서비스코드", "service": "서비스", "tx_type": "거래유형", "category": "구분",
    "transactions": "건수", "points": "포인트", "opening_balance": "기초잔액", "deposits": "충전",
    "bonus_credits": "보너스", "usage_points": "사용", "refunds": "환불", "adjustments": "조정",
    "closing_balance": "기말잔액", "unknown_type_rows": "미분류 건수", "open_discrepancies": "미해결 불일치",
    "tx_dt": "거래일시", "tx_point": "증감포인트", "balance": "잔여포인트", "service_user_id": "서비스사용자ID",
    "user_id": "사용자ID", "user_name": "사용자명", "reg_dt": "등록일시", "state_dt": "상태일시",
    "settle_state": "결제상태", "settle_cost": "결제금액", "settle_point": "충전포인트", "settle_type": "결제유형",
    "settler_name": "신청자", "settler_email": "신청자 이메일", "product_type": "결제내용", "product_name": "상품명",
    "req_dt": "신청일시", "request_point": "환불신청포인트", "account_bank": "은행", "account_num": "계좌번호",
    "account_name": "예금주", "state": "상태", "reason": "사유", "check_name": "점검항목", "period": "기간",
    "expected": "기대값", "actual": "실제값", "difference": "차이", "description": "설명", "status": "처리상태",
    "first_seen_at": "최초발견", "last_seen_at": "최종확인", "evidence": "근거", "source": "출처", "code": "코드",
    "requested_at": "요청일시", "raw_state": "원상태코드", "age_days": "경과일수", "line": "항목", "amount": "금액",
    "row_key": "행식별키", "occurrence": "중복순번", "raw": "원본", "taken_at": "조회일시", "subject": "대상",
    "refundable_balance": "환불가능포인트", "seen_at": "확인일시", "field": "항목", "old_value": "이전값",
    "new_value": "새값", "id": "번호", "won": "결제금액(원)", "deposits_won": "충전 결제금액(원)",
    "pending_deposits_won": "입금대기 금액(원)", "cancelled_deposits_won": "취소 금액(원)", "unclassified_points": "미분류 포인트",
    "sign_disagreements": "부호 불일치 건수", "closed": "마감", "signed_points": "부호포함 포인트", "month_status": "마감여부",
    "closed_by": "마감자", "closed_at": "마감일시", "reopened_by": "재개자", "reopened_at": "재개일시",
    "reopen_reason": "재개 사유", "points_credited": "충전포인트", "daily_balance": "일별 잔액",
    "prior_period_adjustment": "전기 수정", "check": "검증(차이)", "pending_deposits_points": "입금대기 포인트",
    "forced_reason": "강제 마감 사유",
}  # fmt: skip


def header(column: str, lang: str) -> str:
    return KOREAN.get(column, column) if lang == "ko" else column


# Deposit statuses and a month's state, as the files show them.
STATUSES = {
    "settled": ("settled", "입금완료"), "pending": ("pending", "입금대기"), "cancelled": ("cancelled", "취소"),
    "unknown": ("unknown", "알 수 없음"), "closed": ("closed", "마감"), "open": ("open", "미마감"),
}  # fmt: skip


def status(value: str | None, lang: str) -> str | None:
    """A status word in the file's language (an unknown one stays as it is)."""
    if value is None:
        return None
    pair = STATUSES.get(value)
    return value if pair is None else pair[1 if lang == "ko" else 0]


# A statement figure by its key, in Korean (prior-period lines name the figure that changed).
FIGURES_KO = {
    "opening_balance": "기초잔액", "prior_period_adjustment": "전기 수정", "deposits": "충전",
    "bonus_credits": "보너스", "usage_points": "사용 합계", "refunds": "환불", "adjustments": "조정",
    "unclassified_points": "미분류", "closing_balance": "기말잔액", "pending_deposits": "입금대기 충전",
    "cancelled_deposits": "취소된 충전", "transactions": "거래 건수",
}  # fmt: skip


def figure_ko(key: str) -> str:
    """'usage_points' -> '사용 합계'; 'deposits:won' -> '충전 (원)'; 'usage:150' -> '사용 [150]'."""
    won = key.endswith(":won")
    base = key[: -len(":won")] if won else key
    name = f"사용 [{base.split(':', 1)[1]}]" if base.startswith("usage:") else FIGURES_KO.get(base, base)
    return f"{name} (원)" if won else name


def words(lang: str) -> dict[str, str]:
    """The fixed words of the report files (titles, title-block labels, sheet names)."""
    return WORDS_KO if lang == "ko" else WORDS_EN


WORDS_EN = {
    "statement": "Statement of points", "summary": "Month summary", "summary_sheet": "Summary",
    "flagged_sheet": "Flagged", "member": "Member", "corp_num": "Business number", "month": "Month",
    "status": "Status", "produced": "Produced at", "closed_by": "closed by {by}, {at}",
    "open_note": "not closed: figures may still change", "daily": "Daily balance", "usage": "Usage by service",
    "day": "Day", "balance": "Balance (points)", "points": "Points", "service": "Service",
    "members": "Members", "flagged": "Flagged", "why": "Why", "sheet": "Sheet", "yes": "yes", "no": "no",
    "total": "Total", "page": "Page", "reasons": "Flagged because", "line": "Line", "amount": "Points",
    "won": "Won paid", "state": "Status", "pdf_title": "Statement of points (거래명세서)",
    "discrepancies": "{n} open discrepancies", "below": "closing {closing} is below the threshold {threshold}",
    "largest": "largest user #{rank} ({points} points used)", "asked": "asked for (--member)",
    "adds_up": "Check: closing − (opening + movements) = 0 on every row.",
}  # fmt: skip
WORDS_KO = {
    "statement": "거래명세서 (포인트)", "summary": "월 마감 요약", "summary_sheet": "요약", "flagged_sheet": "검토 대상",
    "member": "상호", "corp_num": "사업자번호", "month": "기간", "status": "상태", "produced": "작성일시",
    "closed_by": "마감: {by}, {at}", "open_note": "미마감: 금액이 바뀔 수 있음", "daily": "일별 잔액",
    "usage": "서비스별 사용", "day": "일자", "balance": "잔액 (포인트)", "points": "포인트", "service": "서비스",
    "members": "회원 수", "flagged": "검토 대상", "why": "사유", "sheet": "시트", "yes": "있음", "no": "없음",
    "total": "합계", "page": "쪽", "reasons": "검토 사유", "line": "항목", "amount": "포인트", "won": "결제금액(원)",
    "state": "상태", "pdf_title": "거래명세서 (포인트)", "discrepancies": "미해결 불일치 {n}건",
    "below": "기말잔액 {closing} (임계값 {threshold} 미만)", "largest": "사용량 상위 {rank}위 ({points} 포인트 사용)",
    "asked": "요청한 회원 (--member)", "adds_up": "검증: 모든 행에서 기말잔액 − (기초잔액 + 증감) = 0",
}  # fmt: skip


# The month summary's columns, for people (the Korean ones are the exports' headers).
SUMMARY_EN = {
    "corp_num": "Business number", "member_name": "Member", "month_status": "Month", "opening_balance": "Opening balance",
    "prior_period_adjustment": "Prior-period adjustment", "deposits_won": "Deposits (won paid)",
    "deposits": "Deposits (points)", "bonus_credits": "Bonus points", "usage_points": "Usage", "refunds": "Refunds",
    "adjustments": "Adjustments", "unclassified_points": "Unclassified", "closing_balance": "Closing balance",
    "check": "Check (must be 0)", "pending_deposits_won": "Pending deposits (won)",
    "cancelled_deposits_won": "Cancelled deposits (won)", "transactions": "Transactions",
    "open_discrepancies": "Open discrepancies",
}  # fmt: skip
SUMMARY_KO = {"deposits": "충전 포인트", "month_status": "마감여부", "check": "검증 (0이어야 함)",
              "pending_deposits_won": "입금대기 금액(원)", "cancelled_deposits_won": "취소 금액(원)"}  # fmt: skip


def summary_header(column: str, lang: str) -> str:
    if lang == "ko":
        return SUMMARY_KO.get(column) or KOREAN.get(column, column)
    return SUMMARY_EN.get(column, column)
