"""Hooks registered in ``mmdet.registry.HOOKS``."""
from .image_synthesis_hook import ImageSynthesisHook
from .lottery_ticket_hook import LotteryTicketHook
from .random_state_hook import RandomStateHook

__all__ = ['ImageSynthesisHook', 'LotteryTicketHook', 'RandomStateHook']
