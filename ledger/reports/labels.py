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
}  # fmt: skip


def header(column: str, lang: str) -> str:
    return KOREAN.get(column, column) if lang == "ko" else column
