"""The room board: a composer above a scrolling list of post cards.

Cards are kept by id and updated in place when a new snapshot arrives, so a live refresh never
throws away a half-typed reply or an edit in progress, and the list keeps the post the user is
reading where it was while new posts are added above it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TypeVar

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.board import UNVERIFIED, BoardViewModel, CommentItem, PostItem

VERIFIED = "✓ verified"
CARDS_PER_PASS = 25  # cards built per event-loop pass (~50 ms), so long lists never freeze


class _Editor(QPlainTextEdit):
    """Multi-line text that Ctrl+Enter submits and (when editing) Escape cancels."""

    submitted = Signal()
    cancelled = Signal()

    def __init__(
        self, placeholder: str, accessible: str, *, lines: int = 3, cancellable: bool = False
    ) -> None:
        super().__init__()
        self._cancellable = cancellable
        self.setPlaceholderText(placeholder)
        self.setAccessibleName(accessible)
        self.setTabChangesFocus(True)
        margins = 2 * (self.frameWidth() + int(self.document().documentMargin()))
        self.setMaximumHeight(self.fontMetrics().lineSpacing() * lines + margins)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.submitted.emit()
        elif event.key() == Qt.Key.Key_Escape and self._cancellable:
            self.cancelled.emit()
        else:
            super().keyPressEvent(event)


class _EditRow(QWidget):
    """An editor with its buttons: Save and Cancel to edit an item, Reply to comment."""

    submitted = Signal(str)
    cancelled = Signal()

    def __init__(self, placeholder: str, action: str, what: str, *, cancel: bool) -> None:
        super().__init__()
        self.editor = _Editor(placeholder, f"{what.capitalize()} text", cancellable=cancel)
        self.editor.submitted.connect(self._submit)
        self.editor.cancelled.connect(self.cancelled)
        self.action = QPushButton(action)
        self.action.setAccessibleName(f"{action} {what}")
        self.action.clicked.connect(self._submit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignBottom)
        if cancel:
            button = QPushButton("Cancel")
            button.setAccessibleName(f"Cancel editing {what}")
            button.clicked.connect(self.cancelled)
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignBottom)

    def _submit(self) -> None:
        self.submitted.emit(self.editor.toPlainText())


def _button(text: str, accessible: str, tooltip: str = "") -> QToolButton:
    """A light action button sized to its text (Like, Comment, Edit, Delete)."""
    button = QToolButton()
    button.setText(text)
    button.setAccessibleName(accessible)
    button.setToolTip(tooltip or accessible)
    button.setAutoRaise(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


def _quiet(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def _set(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


W = TypeVar("W", bound=QWidget)
I = TypeVar("I")  # noqa: E741


def _widgets(layout: QBoxLayout, kind: type[W]) -> list[W]:
    """The widgets of ``kind`` in ``layout``, in their visual order."""
    found = (layout.itemAt(index) for index in range(layout.count()))
    return [w for item in found if item is not None and isinstance(w := item.widget(), kind)]


def _reconcile(
    layout: QBoxLayout,
    widgets: dict[str, W],
    items: Sequence[I],
    *,
    key: Callable[[I], str],
    make: Callable[[I], W],
    show: Callable[[W, I], object],
    budget: int | None = None,
) -> tuple[bool, bool]:
    """Make ``layout`` hold one widget per item, in order, reusing widgets by key, building at
    most ``budget`` new ones. Returns (whether widgets were added, removed or moved, whether
    every item now has its widget)."""
    wanted = {key(item) for item in items}
    moved = False
    for gone in [k for k in widgets if k not in wanted]:
        widget = widgets.pop(gone)
        layout.removeWidget(widget)
        widget.deleteLater()
        moved = True
    for index, item in enumerate(items):
        if key(item) not in widgets:
            if budget is not None and budget <= 0:
                return moved, False
            widgets[key(item)] = make(item)
            budget = None if budget is None else budget - 1
        widget = widgets[key(item)]
        if layout.indexOf(widget) != index:
            layout.removeWidget(widget)
            layout.insertWidget(index, widget)
            moved = True
        show(widget, item)
    return moved, True


class _ItemWidget(QFrame):
    """What posts and comments share: author, verified badge or warning, time, the text, and
    Edit and Delete on one's own, editing in place. Editors are built only when first used,
    so hundreds of cards stay cheap."""

    def __init__(
        self,
        view: BoardView,
        what: str,
        *,
        save: Callable[[str], bool],
        remove: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.view = view
        self.what = what
        self._save_text = save
        self.author = QLabel()
        font = self.author.font()
        font.setBold(True)
        self.author.setFont(font)
        self.badge = QLabel()
        self.time = _quiet(QLabel())
        self.edit = _button("Edit", f"Edit {self.what}", f"Edit your {self.what}")
        self.edit.clicked.connect(self.begin_edit)
        self.delete = _button("Delete", f"Delete {self.what}", f"Delete your {self.what}")
        self.delete.clicked.connect(lambda: view.confirm_delete(what, remove))
        header = QHBoxLayout()
        for widget in (self.author, self.badge, self.time):
            header.addWidget(widget)
        header.addStretch(1)
        header.addWidget(self.edit)
        header.addWidget(self.delete)
        self.body = QLabel()
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.body.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.editor: _EditRow | None = None
        self.item: PostItem | CommentItem | None = None
        self.box = QVBoxLayout(self)
        self.box.addLayout(header)
        self.box.addWidget(self.body)

    def show_item(self, item: PostItem | CommentItem) -> bool:
        """Show ``item``; False (and nothing touched) when it is already what is shown."""
        if item == self.item:
            return False
        self.item = item
        _set(self.author, item.author_name)
        _set(self.badge, VERIFIED if item.verified else UNVERIFIED)
        self.badge.setForegroundRole(
            QPalette.ColorRole.PlaceholderText if item.verified else QPalette.ColorRole.WindowText
        )
        self.badge.setToolTip(
            f"Signed by {item.author_name}."
            if item.verified
            else f"This {self.what}'s signature does not match its author: "
            "someone else may have written it."
        )
        _set(self.time, item.time_text)
        self.edit.setVisible(item.mine)
        self.delete.setVisible(item.mine)
        _set(self.body, item.body)
        return True

    def focus_chain(self) -> list[QWidget]:
        editor = [self.editor.editor, self.editor.action] if self.editor else []
        return [self.body, *editor, self.edit, self.delete]

    def begin_edit(self) -> None:
        if self.editor is None:
            self.editor = _EditRow(f"Edit your {self.what}", "Save", self.what, cancel=True)
            self.editor.submitted.connect(self._save)
            self.editor.cancelled.connect(self.end_edit)
            self.box.insertWidget(self.box.indexOf(self.body) + 1, self.editor)
        self.editor.editor.setPlainText(self.body.text())
        self.body.hide()
        self.editor.show()
        self.editor.editor.setFocus()

    def end_edit(self) -> None:
        if self.editor is not None:
            self.editor.hide()
        self.body.show()

    def _save(self, text: str) -> None:
        if self._save_text(text):
            _set(self.body, text.strip())
            self.end_edit()
            self.view.message.hide()


class _CommentRow(_ItemWidget):
    def __init__(self, view: BoardView, item: CommentItem) -> None:
        comment_id = item.comment_id
        super().__init__(
            view,
            "comment",
            save=lambda text: view.vm.edit_comment(comment_id, text),
            remove=lambda: view.vm.delete_comment(comment_id),
        )
        self.box.setContentsMargins(16, 4, 0, 4)


class PostCard(_ItemWidget):
    """One post: header, text, Like and Comment, its comments, and a reply box on demand."""

    def __init__(self, view: BoardView, item: PostItem) -> None:
        post_id = item.post_id
        super().__init__(
            view,
            "post",
            save=lambda text: view.vm.edit_post(post_id, text),
            remove=lambda: view.vm.delete_post(post_id),
        )
        self.post_id = post_id
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setAutoFillBackground(True)
        self.like = _button("", "Like")
        self.like.clicked.connect(lambda: view.vm.toggle_like(self.post_id))
        self.comment = _button("Comment", "Comment", "Write a comment on this post")
        self.comment.clicked.connect(self._toggle_reply)
        actions = QHBoxLayout()
        actions.addWidget(self.like)
        actions.addWidget(self.comment)
        actions.addStretch(1)
        self.box.addLayout(actions)
        self.comments: dict[str, _CommentRow] = {}
        self._comment_list = QVBoxLayout()
        self._comment_list.setSpacing(0)
        self.box.addLayout(self._comment_list)
        self.reply_row: _EditRow | None = None
        self.show_post(item)

    def show_post(self, item: PostItem) -> None:
        if not self.show_item(item):
            return
        liked = "Unlike" if item.liked_by_me else "Like"
        self.like.setText(f"{'♥' if item.liked_by_me else '♡'} {item.likes}")
        self.like.setAccessibleName(liked)
        self.like.setToolTip(
            f"{liked} this post ({item.likes} {'like' if item.likes == 1 else 'likes'})"
        )
        _reconcile(
            self._comment_list,
            self.comments,
            item.comments,
            key=lambda c: c.comment_id,
            make=lambda c: _CommentRow(self.view, c),
            show=_CommentRow.show_item,
        )

    def focus_chain(self) -> list[QWidget]:
        chain = [*super().focus_chain(), self.like, self.comment]
        for row in _widgets(self._comment_list, _CommentRow):
            chain += row.focus_chain()
        reply = [self.reply_row.editor, self.reply_row.action] if self.reply_row else []
        return chain + reply

    def _toggle_reply(self) -> None:
        if self.reply_row is None:
            self.reply_row = _EditRow(
                "Write a comment (Ctrl+Enter to send)", "Reply", "comment", cancel=False
            )
            self.reply_row.setContentsMargins(16, 0, 0, 0)
            self.reply_row.submitted.connect(self._send_reply)
            self.reply_row.hide()
            self.box.addWidget(self.reply_row)
            self.view.chain_focus()
        self.reply_row.setVisible(self.reply_row.isHidden())
        if self.reply_row.isVisible():
            self.reply_row.editor.setFocus()

    def _send_reply(self, text: str) -> None:
        if self.reply_row is not None and self.view.vm.comment(self.post_id, text):
            self.reply_row.editor.clear()
            self.reply_row.hide()
            self.view.message.hide()


class BoardView(QWidget):
    """The board of one room. Takes its :class:`BoardViewModel` and nothing else."""

    def __init__(self, vm: BoardViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.cards: dict[str, PostCard] = {}
        self._arrived = 0  # items from others that came in while the user was scrolled down
        self._anchor: tuple[str, int] | None = None  # (post id, offset) to keep in view
        self._restoring = False
        self._more_cards = QTimer(self, singleShot=True, interval=0)
        self._more_cards.timeout.connect(self._render)
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
        self._render()

    def _build_composer(self) -> QHBoxLayout:
        self.composer = _Editor(
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
        self.empty = _quiet(
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

    def confirm_delete(self, what: str, delete: Callable[[], bool]) -> None:
        """Ask before deleting (window-modal, without a nested event loop)."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            f"Delete {what}",
            f"Delete this {what}? Everyone in the room will stop seeing it.",
            parent=self,
        )
        confirm = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def done() -> None:
            if box.clickedButton() is confirm:
                delete()
            box.deleteLater()

        box.finished.connect(done)
        box.open()

    def _show_error(self, text: str) -> None:
        self.message.setText(f"⚠ {text}")
        self.message.show()

    # -- rendering ------------------------------------------------------------------------------

    def _render(self) -> None:
        snapshot = self.vm.snapshot
        if self._anchor is None:
            self._anchor = self._reading_position()
        moved, complete = _reconcile(
            self._list,
            self.cards,
            snapshot.posts,
            key=lambda p: p.post_id,
            make=lambda p: PostCard(self, p),
            show=PostCard.show_post,
            budget=CARDS_PER_PASS,
        )
        if not complete:
            self._more_cards.start()  # build the rest on the next pass: the window stays live
        self.empty.setVisible(not snapshot.posts)
        self.more.setVisible(snapshot.older > 0)
        self.more.setText(f"Show older posts ({snapshot.older} more)")
        if moved:
            self.chain_focus()
        self._keep_anchor()

    def chain_focus(self) -> None:
        chain = [self.composer, self.post_button, self.new_items]
        for card in _widgets(self._list, PostCard):
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
        for card in _widgets(self._list, PostCard):
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
