"""The room board: a composer above a scrolling list of post cards.

Cards are kept by id and updated in place when a new snapshot arrives, so a live refresh never
throws away a half-typed reply or an edit in progress, and the list keeps the post the user is
reading where it was while new posts are added above it.

A long board is built a screenful first: when the board is first shown it builds the first
:data:`FIRST_CARDS` cards (in place, inside the window, so they are laid out and styled once).
Once it has been painted the rest follow, :data:`CARDS_PER_PASS` at a time: at once while the
user scrolls towards the last card built, else with a pause between (:data:`PASS_GAP_MS`), so
whatever else is waiting (input, the sync engine starting up after the window's first paint)
is never held up for long.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.board import BoardViewModel
from ui.widgets.post_card import Editor, PostCard, quiet, reconcile, widgets_in

CARDS_PER_PASS = 10  # cards built per pass (a card takes 3-10 ms), so long lists never freeze
PASS_GAP_MS = 100  # between passes, unless the user scrolls down to where the cards end
FIRST_CARDS = 8  # cards built before the board is first painted: about a screenful
UNPAINTED_MS = 250  # the rest comes after the first paint, or this long after the first show


class BoardView(QWidget):
    """The board of one room. Takes its :class:`BoardViewModel` and nothing else."""

    def __init__(self, vm: BoardViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.cards: dict[str, PostCard] = {}
        self._arrived = 0  # items from others that came in while the user was scrolled down
        self._anchor: tuple[str, int] | None = None  # (post id, offset) to keep in view
        self._restoring = False
        self._shown = False  # cards are first built when the board is first shown...
        self._painted = False  # ...and the rest of a long board once it has been painted
        self._incomplete = False  # posts without their card yet
        self._more_cards = QTimer(self, singleShot=True)
        self._more_cards.timeout.connect(self._render)
        # Should no paint reach the board itself (all of it covered), the rest comes anyway.
        self._unpainted = QTimer(self, singleShot=True, interval=UNPAINTED_MS)
        self._unpainted.timeout.connect(self._first_screen_done)
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_composer())
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Board message")
        self.message.hide()
        layout.addWidget(self.message)
        self.new_items = QPushButton()
        self.new_items.setAccessibleName("Show new posts")
        self.new_items.setToolTip("Scroll to the newest posts")
        self.new_items.clicked.connect(self._to_top)
        self.new_items.hide()
        layout.addWidget(self.new_items)
        layout.addWidget(self._build_feed(), 1)
        self.setMinimumSize(320, 240)
        vm.changed.connect(self._render)
        vm.error.connect(self._show_error)
        vm.arrived.connect(self._on_arrived)

    def showEvent(self, event: QShowEvent) -> None:
        if not self._shown:
            self._shown = True
            self._render()
            self._unpainted.start()
        super().showEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        self._first_screen_done()

    def _first_screen_done(self) -> None:
        if not self._painted:
            self._painted = True
            self._unpainted.stop()
            if self._incomplete:
                self._more_cards.start(PASS_GAP_MS)  # the rest, once this paint is done

    def _build_composer(self) -> QHBoxLayout:
        self.composer = Editor(
            "Share what you are working on (Ctrl+Enter to post)", "New post text"
        )
        self.composer.submitted.connect(self._post)
        self.post_button = QPushButton("Post")
        self.post_button.setAccessibleName("Post")
        self.post_button.setToolTip("Post to the room's board (Ctrl+Enter)")
        self.post_button.clicked.connect(self._post)
        row = QHBoxLayout()
        row.addWidget(self.composer, 1)
        row.addWidget(self.post_button, 0, Qt.AlignmentFlag.AlignBottom)
        return row

    def _build_feed(self) -> QScrollArea:
        self._list = QVBoxLayout()
        self._list.setSpacing(8)
        self.empty = quiet(
            QLabel("Nothing on the board yet. Say hello, or share your goal for today.")
        )
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.more = QPushButton()
        self.more.setAccessibleName("Show older posts")
        self.more.clicked.connect(self.vm.show_more)
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.addWidget(self.empty)
        content_layout.addLayout(self._list)
        content_layout.addWidget(self.more, 0, Qt.AlignmentFlag.AlignHCenter)
        content_layout.addStretch(1)
        self.feed = QScrollArea()
        self.feed.setWidgetResizable(True)
        self.feed.setFrameShape(QFrame.Shape.NoFrame)
        self.feed.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.feed.setWidget(content)
        bar = self.feed.verticalScrollBar()
        bar.rangeChanged.connect(self._keep_anchor)
        bar.valueChanged.connect(self._scrolled)
        return self.feed

    # -- actions --------------------------------------------------------------------------------

    def _post(self) -> None:
        if self.vm.post(self.composer.toPlainText()):
            self.composer.clear()
            self.message.hide()
            self._to_top()

    def _show_error(self, text: str) -> None:
        self.message.setText(f"⚠ {text}")
        self.message.show()

    # -- rendering ------------------------------------------------------------------------------

    def _render(self) -> None:
        snapshot = self.vm.snapshot
        if self._anchor is None:
            self._anchor = self._reading_position()
        built: list[PostCard] = []
        moved, complete = reconcile(
            self._list,
            self.cards,
            snapshot.posts,
            key=lambda p: p.post_id,
            make=lambda p: _appended(built, PostCard(self, p)),
            show=PostCard.show_post,
            budget=CARDS_PER_PASS if self._painted else FIRST_CARDS,
        )
        if self.isVisible():
            for card in built:
                card.show()  # now, in this pass (a layout would show it on the next one)
        self._incomplete = not complete
        if not complete and self._painted:
            self._more_cards.start(PASS_GAP_MS)  # the rest in a while: the window stays live
        self.empty.setVisible(not snapshot.posts)
        self.more.setVisible(snapshot.older > 0)
        self.more.setText(f"Show older posts ({snapshot.older} more)")
        if moved:
            self.chain_focus()
        self._keep_anchor()

    def chain_focus(self) -> None:
        chain = [self.composer, self.post_button, self.new_items]
        for card in widgets_in(self._list, PostCard):
            chain += card.focus_chain()
        chain.append(self.more)
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

    def _reading_position(self) -> tuple[str, int] | None:
        """The first post in view and its offset from the top, unless the user is at the top
        (then new posts simply appear above)."""
        top = self.feed.verticalScrollBar().value()
        if top == 0:
            return None
        for card in widgets_in(self._list, PostCard):
            if card.geometry().bottom() > top:
                return card.post_id, card.y() - top
        return None

    def _keep_anchor(self) -> None:
        """Scroll so the anchored post sits where it was (after the list above it grew)."""
        if self._anchor is None or self._restoring:
            return
        post_id, offset = self._anchor
        card = self.cards.get(post_id)
        if card is not None:
            self._restoring = True
            self._list.activate()  # place the cards now, not on the next pass
            self.feed.verticalScrollBar().setValue(card.y() - offset)
            self._restoring = False

    def _scrolled(self, value: int) -> None:
        if not self._restoring:
            self._anchor = None  # the user scrolled: what they read now is their choice
        bar = self.feed.verticalScrollBar()
        if self._incomplete and self._painted and value >= bar.maximum() - bar.pageStep():
            self._more_cards.start(0)  # nearly at the last card built: the next ones now
        if value == 0:
            self._arrived = 0
            self.new_items.hide()

    def _on_arrived(self, count: int) -> None:
        if self.feed.verticalScrollBar().value() == 0:
            return  # the user is looking at the top: the new items are in view
        self._arrived += count
        self.new_items.setText(f"↑ {self._arrived} new on the board")
        self.new_items.show()

    def _to_top(self) -> None:
        self._anchor = None
        self.feed.verticalScrollBar().setValue(0)
        self._scrolled(0)


def _appended(cards: list[PostCard], card: PostCard) -> PostCard:
    cards.append(card)
    return card
